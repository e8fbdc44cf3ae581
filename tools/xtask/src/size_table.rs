//! Where the firmware's flash goes, by crate and by module, read from the ELF's symbols.
//!
//! Every symbol with a size in a flash section (the vector table, `.text`, `.rodata`, and `.data`,
//! whose initial values are copied from flash at reset) is charged to the crate and module its demangled path names: `mote_core::ops::cortex_m::matvec_q8_0` to
//! `mote_core`, module `ops::cortex_m`; a method `<mote_core::tokenizer::vocab::Vocab>::pair` to
//! the module of its type; a generic function to the crate that wrote it, whoever instantiated
//! it. The model blob (`MOTE_MODEL`) is its own line and is not code. What no symbol covers
//! (alignment padding, literal pools between functions) is one line too, so that the table adds
//! up to the flash the build takes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

/// The crate a line of the table stands for when a symbol is not a Rust path.
const UNNAMED: &str = "(unnamed constants)";
/// What no symbol covers.
const UNCOVERED: &str = "(padding, literal pools)";
/// The model blob's symbol and its line.
const MODEL_SYMBOL: &str = "MOTE_MODEL";
/// The model's line in the table.
pub const MODEL: &str = "(model blob)";

/// Bytes of flash by crate, and by module within the crates that have modules.
#[derive(Debug, Default)]
pub struct SizeTable {
    /// Crate → module (`""` for the crate root) → bytes.
    pub crates: BTreeMap<String, BTreeMap<String, u64>>,
    /// The flash sections' total: the table's rows add up to it.
    pub total: u64,
}

impl SizeTable {
    /// Bytes charged to `krate`.
    pub fn crate_bytes(&self, krate: &str) -> u64 {
        self.crates.get(krate).map_or(0, |m| m.values().sum())
    }

    /// Code and read-only data: everything but the model.
    pub fn code(&self) -> u64 {
        self.total - self.crate_bytes(MODEL)
    }

    /// The table as Markdown: crates by size, then the modules of every crate that has more
    /// than one, each with its share of the code.
    pub fn markdown(&self) -> String {
        let code = self.code().max(1);
        let pct = |b: u64| format!("{:.1}%", b as f64 * 100.0 / code as f64);
        let mut crates: Vec<(&String, u64)> =
            self.crates.keys().map(|k| (k, self.crate_bytes(k))).collect();
        crates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut s = String::new();
        let _ = writeln!(s, "| crate | bytes | share of code |\n|---|---:|---:|");
        for (k, b) in crates.iter().filter(|(k, _)| k.as_str() != MODEL) {
            let _ = writeln!(s, "| {k} | {b} | {} |", pct(*b));
        }
        let _ = writeln!(s, "| **code and read-only data** | **{}** | 100% |", self.code());
        let _ = writeln!(s, "| {MODEL} | {} | - |", self.crate_bytes(MODEL));
        let _ = writeln!(s, "| flash total | {} | - |", self.total);
        let _ = writeln!(s, "\n| module | bytes | share of code |\n|---|---:|---:|");
        for (k, _) in &crates {
            let modules = &self.crates[*k];
            if modules.len() < 2 {
                continue;
            }
            let mut rows: Vec<(&String, &u64)> = modules.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (m, b) in rows {
                let name = if m.is_empty() { k.to_string() } else { format!("{k}::{m}") };
                let _ = writeln!(s, "| {name} | {b} | {} |", pct(*b));
            }
        }
        s
    }
}

/// The flash taken by `elf`'s read-only sections that `in_flash` accepts and its initialized
/// data sections that `in_ram` accepts (by address), charged to crates and modules by symbol.
pub fn size_table(
    file: &object::File<'_>,
    in_flash: impl Fn(u64) -> bool,
    in_ram: impl Fn(u64) -> bool,
) -> SizeTable {
    let mut table = SizeTable::default();
    let flash_sections: Vec<_> = file
        .sections()
        .filter(|s| {
            let read_only = matches!(
                s.kind(),
                SectionKind::Text | SectionKind::ReadOnlyData | SectionKind::ReadOnlyString
            );
            s.size() > 0
                && (read_only && in_flash(s.address())
                    || s.kind() == SectionKind::Data && in_ram(s.address()))
        })
        .map(|s| s.index())
        .collect();
    table.total =
        file.sections().filter(|s| flash_sections.contains(&s.index())).map(|s| s.size()).sum();
    let mut covered = 0;
    for sym in file.symbols() {
        let Some(index) = sym.section_index() else { continue };
        if sym.size() == 0 || !flash_sections.contains(&index) {
            continue;
        }
        let name = sym.name().unwrap_or("");
        let (krate, module) = if name == MODEL_SYMBOL {
            (MODEL.to_string(), String::new())
        } else {
            owner(&format!("{:#}", rustc_demangle::demangle(name)))
        };
        *table.crates.entry(krate).or_default().entry(module).or_default() += sym.size();
        covered += sym.size();
    }
    let uncovered = table.total.saturating_sub(covered);
    if uncovered > 0 {
        table.crates.entry(UNCOVERED.into()).or_default().insert(String::new(), uncovered);
    }
    table
}

/// The crate and module a demangled symbol belongs to.
pub fn owner(demangled: &str) -> (String, String) {
    let path = item_path(demangled);
    let segments: Vec<&str> = path.split("::").collect();
    let Some(&krate) = segments.first().filter(|k| is_crate_name(k)) else {
        return (by_prefix(demangled).to_string(), String::new());
    };
    // Modules are the lower-case segments after the crate, up to the item (a type, or the last
    // segment, a function or static).
    let inner = segments.get(1..segments.len().saturating_sub(1)).unwrap_or(&[]);
    let modules: Vec<&str> = inner
        .iter()
        .take_while(|s| s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .copied()
        .collect();
    (krate.to_string(), modules.join("::"))
}

/// The path that names the code of `demangled`: for `<T as Trait>::f`, `T`'s path (or the
/// trait's, when `T` is a primitive, a reference or a tuple); for `<T>::f`, `T`'s; otherwise the
/// path itself. Generic arguments are dropped.
fn item_path(demangled: &str) -> String {
    let s = demangled.trim_start_matches('<');
    let s = if s.starts_with(['&', '[', '(', '*']) || starts_with_primitive(s) {
        s.split_once(" as ").map_or(s, |(_, t)| t)
    } else {
        s
    };
    let end = s.find(['<', '>', ' ', '{']).unwrap_or(s.len());
    s[..end].trim_end_matches("::").to_string()
}

fn starts_with_primitive(s: &str) -> bool {
    const PRIMITIVES: [&str; 17] = [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "bool", "char", "str",
    ];
    let word = s.split([' ', '>', ':']).next().unwrap_or("");
    PRIMITIVES.contains(&word)
}

/// Crates without an underscore in their name that a firmware links (a path whose first segment
/// has an underscore is taken for a crate too: `mote_core`, `cortex_m_rt`).
const KNOWN_CRATES: [&str; 8] =
    ["core", "libm", "defmt", "generate", "heapless", "semihosting", "half", "kernels"];

fn is_crate_name(s: &str) -> bool {
    let rust_path = s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    rust_path && (s.contains('_') || KNOWN_CRATES.contains(&s))
}

/// The crate of a symbol that is not a Rust path, by its name.
fn by_prefix(name: &str) -> &'static str {
    let plain = name.trim_start_matches('_');
    if name.starts_with(".L") || name.starts_with("anon.") {
        UNNAMED
    } else if plain.starts_with("defmt") {
        "defmt"
    } else if plain.starts_with("aeabi")
        || ["memcpy", "memmove", "memset", "memcmp", "bcmp"].iter().any(|f| plain.starts_with(f))
    {
        "compiler_builtins"
    } else if ["INTERRUPTS", "RESET_VECTOR", "EXCEPTIONS", "Reset", "pre_init"]
        .iter()
        .any(|f| plain.starts_with(f))
        || ["HardFault", "DefaultHandler"].iter().any(|f| plain.starts_with(f))
    {
        "cortex_m_rt"
    } else {
        "(other symbols)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_functions_methods_and_trait_impls_to_their_modules() {
        let cases = [
            ("mote_core::ops::cortex_m::matvec_q8_0", ("mote_core", "ops::cortex_m")),
            ("mote_core::forward::pass", ("mote_core", "forward")),
            ("<mote_core::tokenizer::vocab::Vocab>::pair", ("mote_core", "tokenizer::vocab")),
            (
                "<mote_core::session::Session>::generate_with::<generate::run::{closure#6}>",
                ("mote_core", "session"),
            ),
            (
                "<mote_core::gguf::error::GgufError as defmt::traits::Format>::_format_data",
                ("mote_core", "gguf::error"),
            ),
            ("<&str as core::fmt::Display>::fmt", ("core", "fmt")),
            ("<usize as core::fmt::Display>::fmt", ("core", "fmt")),
            ("generate::__cortex_m_rt_main", ("generate", "")),
            ("libm::math::generic::sqrt::RSQRT_TAB", ("libm", "math::generic::sqrt")),
            ("compiler_builtins::mem::memcpy", ("compiler_builtins", "mem")),
            (
                "<heapless::string::String<64> as core::fmt::Write>::write_char",
                ("heapless", "string"),
            ),
            ("_defmt_write", ("defmt", "")),
            (".Lanon.8d924c191c82017a6da917c5c8298a01.151", (UNNAMED, "")),
            ("__INTERRUPTS", ("cortex_m_rt", "")),
        ];
        for (name, (krate, module)) in cases {
            assert_eq!(owner(name), (krate.to_string(), module.to_string()), "{name}");
        }
    }
}

//! # mote-boards: one reading of boards.toml, one memory plan
//!
//! Every part of mote that needs to know a board or size a model for one goes through this crate:
//! the host tool (`mote inspect --board`), `cargo xtask` (builds, QEMU runs, `size`) and the
//! firmware's build script (which refuses a build that does not fit). So the schema of
//! `boards.toml`, the rule that picks the device's KV type, the flash and RAM sums and the
//! firmware's build-time defaults are written once, and the three cannot drift apart.

mod plan;
mod schema;

pub use plan::{device_kv, kv_fits, Fit, Plan};
pub use schema::{Board, Boards, Budgets, Error, Math, Qemu, Region, Transport};

/// `boards.toml` as it was when this crate was built, for tools run away from the repository.
pub const BOARDS_TOML: &str = include_str!("../../boards.toml");

/// The prompt the generating firmware uses when the build is given none (`MOTE_PROMPT`).
pub const DEFAULT_PROMPT: &str = "Once upon a time";
/// The models that come with mote, by name, each with its Q8_0 GGUF relative to the repository
/// root: `--model NAME` (and `MOTE_MODEL=NAME`) takes one of these names in place of a path. The
/// first is the default.
pub const BUNDLED_MODELS: [(&str, &str); 2] = [
    ("tinystories-base", "models/tinystories-base/tinystories-base-q8_0.gguf"),
    // Small enough for boards with 512 KiB of flash.
    ("tinystories-small", "models/tinystories-small/tinystories-small-q8_0.gguf"),
];
/// The model the generating firmware embeds when the build is given none (`MOTE_MODEL`), relative
/// to the repository root.
pub const DEFAULT_MODEL: &str = BUNDLED_MODELS[0].1;

/// The GGUF path (relative to the repository root) of the bundled model called `name`.
pub fn bundled_model(name: &str) -> Option<&'static str> {
    BUNDLED_MODELS.iter().find(|(n, _)| *n == name).map(|(_, path)| *path)
}

/// The bundled models' names, for messages: "tinystories-base, tinystories-small".
pub fn bundled_model_names() -> String {
    BUNDLED_MODELS.map(|(name, _)| name).join(", ")
}
/// Tokens the generating firmware produces when the build sets no `MOTE_MAX_TOKENS` (as many as
/// `mote generate` produces by default).
pub const DEFAULT_MAX_TOKENS: u32 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_names_resolve_to_committed_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (name, path) in BUNDLED_MODELS {
            assert_eq!(bundled_model(name), Some(path));
            assert!(root.join(path).is_file(), "{path}");
        }
        assert_eq!(bundled_model("tinystories-675k"), None);
        assert_eq!(bundled_model_names(), "tinystories-base, tinystories-small");
    }
}

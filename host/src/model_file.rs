//! Where a subcommand's model comes from: a GGUF file memory-mapped read-only, or the default
//! model bundled into the binary. Either way mote-core reads it in place.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mote_core::gguf::Gguf;

/// The models bundled into the binary, by the names `--model` takes (`mote_boards::BUNDLED_MODELS`
/// lists the same names and files), so that mote works anywhere without a model file. The first is
/// the default.
pub static BUNDLED: [(&str, &[u8]); 2] = [
    (
        "tinystories-base",
        include_bytes!("../../models/tinystories-base/tinystories-base-q8_0.gguf"),
    ),
    (
        "tinystories-small",
        include_bytes!("../../models/tinystories-small/tinystories-small-q8_0.gguf"),
    ),
];

/// The default model: the Q8_0 GGUF of `models/tinystories-base`.
pub static DEFAULT_MODEL: &[u8] = BUNDLED[0].1;

/// What error messages call the bundled default model.
pub const DEFAULT_MODEL_NAME: &str = "the bundled model tinystories-base (Q8_0)";

enum Bytes {
    Mapped(memmap2::Mmap),
    Bundled(&'static [u8]),
}

/// A model's bytes and what to call them in messages.
pub struct ModelFile {
    bytes: Bytes,
    name: String,
}

impl ModelFile {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open model {}; check the path", path.display()))?;
        let map = map_readonly(&file)
            .with_context(|| format!("cannot memory-map model {}", path.display()))?;
        Ok(Self { bytes: Bytes::Mapped(map), name: path.display().to_string() })
    }

    /// `--model`: a bundled model's name or a GGUF file; without it, the bundled default model.
    /// A name is looked up first (`./tinystories-small` reaches a file of that name).
    pub fn open_arg(model: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = model else { return Ok(Self::bundled()) };
        if let Some(file) = path.to_str().and_then(Self::named) {
            return Ok(file);
        }
        // A bare word that is no file was meant as a name.
        let bare = path.components().count() == 1 && path.extension().is_none();
        if bare && !path.exists() {
            anyhow::bail!(
                "unknown model {}: no such file, and the bundled models are {}",
                path.display(),
                mote_boards::bundled_model_names()
            );
        }
        Self::open(path)
    }

    /// The bundled default model.
    pub fn bundled() -> Self {
        Self { bytes: Bytes::Bundled(DEFAULT_MODEL), name: DEFAULT_MODEL_NAME.to_string() }
    }

    /// The bundled model called `name`, if there is one.
    pub fn named(name: &str) -> Option<Self> {
        let (name, bytes) = BUNDLED.iter().find(|(n, _)| *n == name)?;
        Some(Self {
            bytes: Bytes::Bundled(bytes),
            name: format!("the bundled model {name} (Q8_0)"),
        })
    }

    /// The model's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Bundled(b) => b,
        }
    }

    /// The path, or what the bundled model is called.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path of a mapped file (`None` for the bundled model).
    pub fn path(&self) -> Option<PathBuf> {
        match self.bytes {
            Bytes::Mapped(_) => Some(PathBuf::from(&self.name)),
            Bytes::Bundled(_) => None,
        }
    }

    /// Parses the GGUF header.
    pub fn gguf(&self) -> anyhow::Result<Gguf<'_>> {
        Gguf::parse(self.bytes()).with_context(|| {
            format!(
                "{} is not a GGUF file mote can read (`mote convert` writes one from a Hugging Face \
                 GPT-2 checkpoint)",
                self.name
            )
        })
    }
}

#[allow(unsafe_code)]
fn map_readonly(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and every read of it is bounds-checked by mote-core; the
    // only hazard is the file being truncated by another process while mapped, as for any mmap.
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_model_is_a_gguf_mote_can_run() {
        let f = ModelFile::bundled();
        let g = f.gguf().unwrap();
        let mut layers = [mote_core::model::Layer::EMPTY; mote_core::model::MAX_LAYERS];
        mote_core::model::Model::load(&g, &mut layers).unwrap();
        mote_core::tokenizer::Tokenizer::from_gguf(&g).unwrap();
        assert_eq!(f.name(), DEFAULT_MODEL_NAME);
        assert!(f.path().is_none());
    }

    #[test]
    fn bundled_models_are_the_boards_crate_list_and_open_by_name() {
        let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
        let listed: Vec<&str> = mote_boards::BUNDLED_MODELS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, listed);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (name, path) in mote_boards::BUNDLED_MODELS {
            let f = ModelFile::open_arg(Some(Path::new(name))).unwrap();
            assert_eq!(f.bytes(), std::fs::read(root.join(path)).unwrap(), "{name}");
            assert!(f.name().contains(name) && f.path().is_none());
        }
        assert_eq!(ModelFile::open_arg(None).unwrap().name(), DEFAULT_MODEL_NAME);
    }

    #[test]
    fn unknown_model_name_lists_the_bundled_ones() {
        let err = ModelFile::open_arg(Some(Path::new("tinystories-huge"))).err().unwrap();
        let err = format!("{err:#}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("unknown model tinystories-huge"), "{err}");
        assert!(err.contains("tinystories-base, tinystories-small"), "{err}");
    }
}

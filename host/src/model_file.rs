//! Where a subcommand's model comes from: a GGUF file memory-mapped read-only, or the default
//! model bundled into the binary. Either way mote-core reads it in place.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mote_core::gguf::Gguf;

/// The default model: the Q8_0 GGUF of `models/tinystories-675k`, compiled into the binary so that
/// `mote generate` works anywhere without `--model`.
pub static DEFAULT_MODEL: &[u8] =
    include_bytes!("../../models/tinystories-675k/tinystories-675k-q8_0.gguf");

/// What error messages call the bundled model.
pub const DEFAULT_MODEL_NAME: &str = "the bundled model tinystories-675k (Q8_0)";

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

    /// `--model` if given, else the bundled default model.
    pub fn open_arg(model: Option<&Path>) -> anyhow::Result<Self> {
        match model {
            Some(p) => Self::open(p),
            None => Ok(Self::bundled()),
        }
    }

    /// The bundled default model.
    pub fn bundled() -> Self {
        Self { bytes: Bytes::Bundled(DEFAULT_MODEL), name: DEFAULT_MODEL_NAME.to_string() }
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
}

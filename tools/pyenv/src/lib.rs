//! The one Python that mote's tests and tools run: a virtual environment inside the repository
//! (`target/py`), made by `cargo xtask setup` from `tools/py/requirements-test.txt` and by nothing
//! else.
//!
//! Nothing here falls back to `python3` from `PATH`: a package installed there by hand would let a
//! check pass on one machine and fail on a fresh one. When the environment is missing, or was made
//! from other requirements than the ones checked in now, the error says to run `cargo xtask setup`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The requirements file, relative to the repository root.
pub const REQUIREMENTS: &str = "tools/py/requirements-test.txt";

/// The environment's folder, relative to the repository root (git-ignored with `target/`).
pub const VENV_DIR: &str = "target/py";

/// The copy of the requirements the environment was made from, inside it: when it differs from
/// [`REQUIREMENTS`], the environment is stale.
const STAMP: &str = "mote-requirements-test.txt";

/// Why the test Python cannot be used.
#[derive(Debug)]
pub enum PyEnvError {
    /// No interpreter at the environment's path.
    Missing(PathBuf),
    /// The environment was made from other requirements (or its stamp is gone).
    Stale(PathBuf),
    /// The requirements file cannot be read.
    Requirements(PathBuf, std::io::Error),
}

impl fmt::Display for PyEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(p) => write!(
                f,
                "the test Python environment {} is missing: run `cargo xtask setup`",
                p.display()
            ),
            Self::Stale(p) => write!(
                f,
                "the test Python environment {} was made from other requirements than {REQUIREMENTS}: \
                 run `cargo xtask setup`",
                p.display()
            ),
            Self::Requirements(p, e) => write!(f, "cannot read {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for PyEnvError {}

/// The environment's folder under `root`.
pub fn venv_dir(root: &Path) -> PathBuf {
    root.join(VENV_DIR)
}

/// The environment's interpreter under `root` (whether or not it exists).
pub fn interpreter_path(root: &Path) -> PathBuf {
    let venv = venv_dir(root);
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// The interpreter to run every Python script of mote's tests and tools with, if the environment
/// exists and was made from the requirements checked in now.
pub fn python(root: &Path) -> Result<PathBuf, PyEnvError> {
    let interpreter = interpreter_path(root);
    if !interpreter.is_file() {
        return Err(PyEnvError::Missing(venv_dir(root)));
    }
    let wanted = requirements(root)?;
    match fs::read_to_string(venv_dir(root).join(STAMP)) {
        Ok(made_from) if made_from == wanted => Ok(interpreter),
        _ => Err(PyEnvError::Stale(venv_dir(root))),
    }
}

/// The requirements checked in now.
pub fn requirements(root: &Path) -> Result<String, PyEnvError> {
    let path = root.join(REQUIREMENTS);
    fs::read_to_string(&path).map_err(|e| PyEnvError::Requirements(path, e))
}

/// Records that the environment now holds `requirements` (call after they installed cleanly).
pub fn stamp(root: &Path, requirements: &str) -> std::io::Result<()> {
    fs::write(venv_dir(root).join(STAMP), requirements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tools/py")).unwrap();
        fs::write(dir.path().join(REQUIREMENTS), "numpy==1\n").unwrap();
        dir
    }

    #[test]
    fn a_missing_environment_says_to_run_setup() {
        let root = fake_root();
        let e = python(root.path()).unwrap_err();
        assert!(matches!(e, PyEnvError::Missing(_)));
        assert!(e.to_string().contains("cargo xtask setup"), "{e}");
    }

    #[test]
    fn an_environment_made_from_other_requirements_is_stale() {
        let root = fake_root();
        let bin = interpreter_path(root.path());
        fs::create_dir_all(bin.parent().unwrap()).unwrap();
        fs::write(&bin, "").unwrap();
        // No stamp: stale.
        assert!(matches!(python(root.path()), Err(PyEnvError::Stale(_))));
        stamp(root.path(), "numpy==0\n").unwrap();
        let e = python(root.path()).unwrap_err();
        assert!(matches!(e, PyEnvError::Stale(_)));
        assert!(e.to_string().contains("cargo xtask setup"), "{e}");
        stamp(root.path(), &requirements(root.path()).unwrap()).unwrap();
        assert_eq!(python(root.path()).unwrap(), bin);
    }
}

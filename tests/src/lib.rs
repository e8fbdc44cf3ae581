//! Shared helpers for mote's end-to-end tests: where the repository, the shared data and the
//! `mote` binary are.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `../shared/data` beside the repository: third-party data, read in place, never copied.
pub fn shared_data() -> PathBuf {
    repo_root().join("../shared/data")
}

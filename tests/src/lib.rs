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

/// What the GGUF fuzz target does with each input, shared with the test that replays every saved
/// crash: parse, and if that succeeds read back every metadata value, array element and tensor view.
/// Panics only on a broken invariant of the reader.
pub fn exercise_gguf(data: &[u8]) -> usize {
    use mote_core::gguf::{Gguf, Value};
    let Ok(g) = Gguf::parse(data) else { return 0 };
    let mut n = 0usize;
    for (key, value) in g.metadata() {
        assert!(g.get(key).is_some());
        if let Value::Array(a) = value {
            n += a.iter().count();
            if let Some(strings) = a.strings() {
                n += strings.map(str::len).sum::<usize>();
            }
            let _ = a.get(a.len().saturating_sub(1));
        }
    }
    for t in g.tensors() {
        let bytes = t.ty.bytes_for(t.n_elements()).unwrap_or(0);
        assert_eq!(t.data.len() as u64, bytes, "tensor view has the size its type and shape give");
        assert!(g.tensor(t.name).is_some());
        n += t.data.len();
    }
    assert_eq!(g.tensors().count(), g.n_tensors());
    n
}

//! Every input the fuzzers ever found a fault with stays a test: `fuzz/regressions/<target>/`.

use std::fs;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = mote_tests::repo_root().join("fuzz/regressions").join(target);
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "md") {
            out.push((path.display().to_string(), fs::read(&path).unwrap()));
        }
    }
    out
}

#[test]
fn gguf_reader_survives_every_saved_fuzz_input() {
    let inputs = inputs("gguf_parse");
    assert!(!inputs.is_empty());
    for (name, data) in inputs {
        let result = std::panic::catch_unwind(|| mote_tests::exercise_gguf(&data));
        assert!(result.is_ok(), "{name} makes the GGUF reader panic");
    }
}

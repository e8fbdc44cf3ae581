//! The default model (`models/tinystories-base`): its committed GGUF is exactly what `mote convert`
//! makes of its committed checkpoint, and it fits the 1 MB-flash board it was sized for.

use mote_tests::{mote, mote_json};
use std::path::PathBuf;

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/tinystories-base")
}

#[test]
fn committed_gguf_is_the_conversion_of_the_committed_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.gguf");
    let o = mote(&[
        "convert".as_ref(),
        model_dir().as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--type".as_ref(),
        "q8_0".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let made = std::fs::read(&out).unwrap();
    let committed = std::fs::read(model_dir().join("tinystories-base-q8_0.gguf")).unwrap();
    assert!(made == committed, "mote convert no longer reproduces the committed GGUF");
    assert!(committed.len() <= 900_000, "the GGUF is {} bytes, over 900 KB", committed.len());
}

#[test]
fn fits_the_nrf52840_dk() {
    let gguf = model_dir().join("tinystories-base-q8_0.gguf");
    let r = mote_json(&["inspect", gguf.to_str().unwrap(), "--json", "--board", "nrf52840-dk"]);
    assert_eq!(r["board"]["fits"], true);
    // Issue 22's budget: the run state at full context with a Q8_0 KV cache within 96 KB, so that
    // the default model runs on boards with 128 KiB of RAM beside the stack and the console.
    let run_state = r["memory"]["ram"]["run_state_bytes"]["q8_0"].as_u64().unwrap();
    assert!(run_state <= 96_000, "run state {run_state} bytes");
}

//! Hostile model files and prompts through the `mote` binary: every one is refused with a non-zero
//! exit and a one-line error naming the problem, never a panic. (Hostile checkpoints for
//! `mote convert` are in convert.rs.)

use std::path::{Path, PathBuf};

use mote_tests::{mote, repo_root};

fn default_model() -> PathBuf {
    repo_root().join("models/tinystories-base/tinystories-base-q8_0.gguf")
}

/// Asserts that `out` failed with exactly one line on stderr, containing every one of `needles`.
fn assert_one_line_error(what: &str, out: &std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what}: succeeded");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: not one line: {err}");
    assert!(err.starts_with("error: ") && !err.contains("panicked"), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: message lacks {n:?}: {err}");
    }
}

/// Runs `mote inspect` and `mote generate` on `blob` written to a file; both must refuse it.
fn assert_refused(name: &str, blob: &[u8], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.gguf"));
    std::fs::write(&path, blob).unwrap();
    let p = path.to_str().unwrap();
    let out = mote(&["inspect", p]);
    assert_one_line_error(&format!("inspect {name}"), &out, needles);
    let out = mote(&["generate", "--model", p, "--tokens", "1", "--max-tokens", "2"]);
    assert_one_line_error(&format!("generate {name}"), &out, needles);
}

/// A GGUF v3 with `general.architecture = gpt2` and F32 tensors `(name, dims, offset)`, followed
/// by `data_len` zero bytes of data.
fn gguf_with_tensors(tensors: &[(&str, &[u64], u64)], data_len: usize) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend(1u64.to_le_bytes());
    let key = "general.architecture";
    b.extend((key.len() as u64).to_le_bytes());
    b.extend(key.as_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend(4u64.to_le_bytes());
    b.extend(b"gpt2");
    for (name, dims, offset) in tensors {
        b.extend((name.len() as u64).to_le_bytes());
        b.extend(name.as_bytes());
        b.extend((dims.len() as u32).to_le_bytes());
        for d in *dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(0u32.to_le_bytes()); // F32
        b.extend(offset.to_le_bytes());
    }
    while b.len() % 32 != 0 {
        b.push(0);
    }
    b.extend(vec![0u8; data_len]);
    b
}

#[test]
fn refuses_empty_and_truncated_files() {
    let blob = std::fs::read(default_model()).unwrap();
    assert_refused("empty", &[], &["empty.gguf", "truncated"]);
    assert_refused(
        "header-only",
        &blob[..20],
        &["header-only.gguf", "count 28", "larger than the rest"],
    );
    assert_refused(
        "cut-metadata",
        &blob[..1000],
        &["cut-metadata.gguf", "array element count 2048"],
    );
    assert_refused("cut-data", &blob[..blob.len() - 1], &["cut-data.gguf", "past the end"]);
}

#[test]
fn refuses_wrong_magic_and_version() {
    let blob = std::fs::read(default_model()).unwrap();
    let mut bad = blob.clone();
    bad[..4].copy_from_slice(b"GGML");
    assert_refused("magic", &bad, &["not a GGUF file", "magic 0x4c4d4747"]);
    for version in [1u32, 2, 4, u32::MAX] {
        let mut bad = blob.clone();
        bad[4..8].copy_from_slice(&version.to_le_bytes());
        assert_refused("version", &bad, &[&format!("unsupported GGUF version {version}")]);
    }
}

#[test]
fn refuses_huge_tensor_and_metadata_counts() {
    let blob = std::fs::read(default_model()).unwrap();
    for (at, what) in [(8, "tensor"), (16, "metadata")] {
        for count in [1u64 << 40, u64::MAX] {
            let mut bad = blob.clone();
            bad[at..at + 8].copy_from_slice(&count.to_le_bytes());
            assert_refused(
                "count",
                &bad,
                &[&format!("{what} count {count}"), "larger than the rest of the file"],
            );
        }
    }
}

#[test]
fn refuses_tensors_that_overlap_or_point_past_the_end() {
    let ok = gguf_with_tensors(&[("a", &[8], 0), ("b", &[8], 32)], 64);
    let out = mote(&["inspect".as_ref(), write_tmp(&ok).as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let overlap = gguf_with_tensors(&[("a", &[8], 0), ("b", &[8], 16)], 64);
    assert_refused("overlap", &overlap, &["tensor \"b\" data offset 16, expected 32"]);
    let backwards = gguf_with_tensors(&[("a", &[8], 32), ("b", &[8], 0)], 64);
    assert_refused("backwards", &backwards, &["tensor \"a\" data offset 32, expected 0"]);
    let past_end = gguf_with_tensors(&[("a", &[8], 0), ("b", &[8], 32)], 40);
    assert_refused("past-end", &past_end, &["tensor \"b\" data ends at byte", "past the end"]);
}

#[test]
fn refuses_shapes_whose_element_count_overflows() {
    let huge: &[u64] = &[1 << 32, 1 << 32, 1 << 32, 1 << 32];
    let blob = gguf_with_tensors(&[("a", huge, 0)], 32);
    assert_refused("overflow", &blob, &["tensor \"a\" has shape", "too many elements"]);
    let zero: &[u64] = &[8, 0];
    let blob = gguf_with_tensors(&[("a", zero, 0)], 32);
    assert_refused("zero", &blob, &["tensor \"a\" has shape [8, 0, 1, 1]", "a zero dimension"]);
}

fn write_tmp(blob: &[u8]) -> tempfile::TempPath {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), blob).unwrap();
    f.into_temp_path()
}

fn generate(extra: &[&std::ffi::OsStr]) -> std::process::Output {
    let model = default_model();
    let mut args: Vec<&std::ffi::OsStr> = vec!["generate".as_ref(), "--model".as_ref()];
    args.push(model.as_os_str());
    args.extend_from_slice(extra);
    mote(&args)
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn refuses_empty_huge_and_invalid_utf8_prompts() {
    let out = generate(&[os("--prompt"), os("")]);
    assert_one_line_error("empty prompt", &out, &["the prompt is empty"]);

    let empty = write_tmp(b"");
    let out = generate(&[os("--prompt-file"), empty.as_os_str()]);
    assert_one_line_error("empty prompt file", &out, &["the prompt is empty"]);

    // 1 MB of text: far more tokens than the 128-token context.
    let big = write_tmp(&b"Once upon a time, ".repeat(1 << 20 >> 4)[..1 << 20]);
    let out = generate(&[os("--prompt-file"), big.as_os_str()]);
    assert_one_line_error("1 MB prompt", &out, &["more than the context length 128"]);

    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"Once upon a caf\xe9");
    let out = generate(&[os("--prompt"), bad]);
    assert_one_line_error("invalid UTF-8", &out, &["not valid UTF-8 (byte 0xe9 at offset 15)"]);
    let bad_file = write_tmp(b"\xff\xfe");
    let out = generate(&[os("--prompt-file"), bad_file.as_os_str()]);
    assert_one_line_error("invalid UTF-8 file", &out, &["not valid UTF-8 (byte 0xff at offset 0)"]);

    let out = generate(&[os("--prompt-file"), Path::new("/nonexistent/prompt.txt").as_os_str()]);
    assert_one_line_error("missing prompt file", &out, &["/nonexistent/prompt.txt"]);
}

#[test]
fn max_tokens_zero_and_beyond_the_context_are_refused() {
    let out = generate(&[os("--tokens"), os("1"), os("--max-tokens"), os("0")]);
    assert_one_line_error("--max-tokens 0", &out, &["--max-tokens 0 generates nothing"]);

    // More than the context (128 positions) can ever hold, up to the largest count.
    for huge in ["129".to_string(), usize::MAX.to_string()] {
        let out = generate(&[os("--tokens"), os("1"), os("--max-tokens"), os(&huge)]);
        assert_one_line_error(
            "huge --max-tokens",
            &out,
            &[&format!("--max-tokens {huge} is more than"), "context holds 128 tokens"],
        );
    }

    // The whole context is allowed: a 1-token prompt fills it (token limit and a full context
    // coincide at 128), unless the model ends the text first.
    let out = generate(&[os("--tokens"), os("1"), os("--max-tokens"), os("128"), os("--json")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = v["generated_ids"].as_array().unwrap().len();
    let stop = v["stop"].as_str().unwrap();
    assert!(
        (stop == "token limit" && n == 128) || (stop == "end of text" && n < 128),
        "stop {stop} after {n} tokens"
    );

    // Larger than any count: clap refuses it, naming the option.
    let out =
        generate(&[os("--tokens"), os("1"), os("--max-tokens"), os("99999999999999999999999")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.lines().next().unwrap_or("").contains("--max-tokens"),
        "{err}"
    );
}

//! `mote tokenize` / `mote detokenize` end to end, on GPT-2's vocabulary from
//! `../shared/data/gpt2-tokenizer` written into a GGUF with the index from
//! `mote::convert::tokenizer_index::build`. Expected ids are Hugging Face's (see
//! tests/fixtures/tokenizer/gpt2_hard.json, written by tools/py/tokenizer_reference.py).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use mote_core::gguf::Gguf;
use mote_core::tokenizer::{Special, Tokenizer};
use mote_tests::{mote, repo_root, shared_data};

/// The indexed GGUF as a file, written once.
fn model_path() -> &'static Path {
    static FILE: OnceLock<tempfile::TempPath> = OnceLock::new();
    FILE.get_or_init(|| {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), mote_tests::gpt2_gguf(true, &[])).unwrap();
        f.into_temp_path()
    })
}

fn run(args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    mote(&args)
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "mote failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn model() -> &'static str {
    model_path().to_str().unwrap()
}

#[test]
fn tokenize_prints_hugging_face_ids_and_tokens_as_json() {
    let out = stdout(&run(&["tokenize", "--model", model(), "Hello world's  \n\n  x", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ids"], serde_json::json!([15496, 995, 338, 220, 220, 628, 220, 2124]));
    assert_eq!(v["tokens"][1], "Ġworld");
}

#[test]
fn tokenize_prints_one_line_per_token() {
    let out = stdout(&run(&["tokenize", "--model", model(), "Hello world"]));
    assert_eq!(out, "15496\tHello\t\"Hello\"\n995\tĠworld\t\" world\"\n");
}

#[test]
fn tokenize_recognizes_special_tokens_only_with_the_flag() {
    let text = "a<|endoftext|>b";
    let plain = stdout(&run(&["tokenize", "--model", model(), text, "--json"]));
    let special = stdout(&run(&["tokenize", "--model", model(), text, "--json", "--special"]));
    let ids = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["ids"].clone();
    assert_eq!(ids(&plain), serde_json::json!([64, 27, 91, 437, 1659, 5239, 91, 29, 65]));
    assert_eq!(ids(&special), serde_json::json!([64, 50256, 65]));
}

#[test]
fn detokenize_reverses_tokenize() {
    let out = stdout(&run(&["detokenize", "--model", model(), "15496", "995,338"]));
    assert_eq!(out, "Hello world's\n");
    let out = stdout(&run(&["detokenize", "--model", model(), "[15496, 995]", "--json"]));
    assert_eq!(out, "{\"text\":\"Hello world\"}\n");
}

#[test]
fn detokenize_raw_writes_exact_bytes_of_a_split_character() {
    // "😀" is three GPT-2 tokens; the first alone is an incomplete UTF-8 sequence.
    let out = stdout(&run(&["tokenize", "--model", model(), "😀", "--json"]));
    let ids: Vec<u32> = serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["ids"].clone(),
    )
    .unwrap();
    assert!(ids.len() > 1);
    let first = ids[0].to_string();
    let raw = run(&["detokenize", "--model", model(), "--raw", &first]);
    assert!(raw.status.success());
    assert_eq!(raw.stdout, &"😀".as_bytes()[..raw.stdout.len()]);
    assert!(raw.stdout.len() < 4);
    let lossy = stdout(&run(&["detokenize", "--model", model(), &first]));
    assert_eq!(lossy, "\u{FFFD}\n");
}

#[test]
fn tokenize_rejects_text_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let o = mote(&["tokenize".as_ref(), "--model".as_ref(), model().as_ref(), bad]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not valid UTF-8 (byte 0xe9 at offset 3)"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn errors_say_what_to_do() {
    // Without --model the bundled model's tokenizer (vocabulary of 2048) is used.
    let o = run(&["detokenize", "5000"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("token id 5000 is outside the vocabulary"));
    let o = run(&["tokenize", "hello", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["detokenize", "--model", model(), "50257"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("token id 50257 is outside the vocabulary"));
    let o = run(&["detokenize", "--model", model(), "12x"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"12x\" is not a token id"));
    let o = run(&["tokenize", "--model", "/nonexistent/m.gguf", "hello"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot open model /nonexistent/m.gguf"));
    let not_gguf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_gguf.path(), b"not a model").unwrap();
    let o = run(&["tokenize", "--model", not_gguf.path().to_str().unwrap(), "hello"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a GGUF file mote can read"));
}

#[test]
fn index_built_for_the_converter_gives_the_ids_of_the_scans() {
    let indexed = mote_tests::gpt2_gguf(true, &[]);
    let plain = mote_tests::gpt2_gguf(false, &[]);
    let a = Tokenizer::from_gguf(&Gguf::parse(&indexed).unwrap()).unwrap();
    let b = Tokenizer::from_gguf(&Gguf::parse(&plain).unwrap()).unwrap();
    assert!(a.vocab().has_index() && !b.vocab().has_index());
    let text = "Once upon a time, a little girl named Lily found a needle in her room. \
                She knew it was difficult to play with it because it was sharp.";
    let ids = mote::tokenize::encode(&a, text, Special::AsText).unwrap();
    assert_eq!(ids, mote::tokenize::encode(&b, text, Special::AsText).unwrap());
    assert_eq!(mote::tokenize::decode(&a, &ids).unwrap(), text.as_bytes());
}

/// The GGUF that `mote convert` makes of `../shared/data/hf-lmbuddy-fake-gpt2` with GPT-2's
/// tokenizer files: a real checkpoint written by other software, converted by mote.
fn converted() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fake-gpt2.gguf");
        let data = shared_data();
        let o = Command::new(env!("CARGO_BIN_EXE_mote"))
            .arg("convert")
            .arg(data.join("hf-lmbuddy-fake-gpt2"))
            .arg("--tokenizer")
            .arg(data.join("gpt2-tokenizer"))
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "mote convert failed: {}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(&out).unwrap()
    })
}

#[derive(serde::Deserialize)]
struct HardCase {
    text: String,
    ids: Vec<u32>,
    ids_special: Vec<u32>,
}

#[test]
fn converted_model_tokenizes_like_hugging_face() {
    let blob = converted();
    let tok = Tokenizer::from_gguf(&Gguf::parse(blob).unwrap()).unwrap();
    assert!(tok.vocab().has_index(), "mote convert writes the mote.tokenizer.* index");
    assert_eq!((tok.n_vocab(), tok.eos()), (50257, Some(50256)));
    let fixture = repo_root().join("tests/fixtures/tokenizer/gpt2_hard.json");
    let hard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let cases: Vec<HardCase> = serde_json::from_value(hard["cases"].clone()).unwrap();
    for c in &cases {
        assert_eq!(
            mote::tokenize::encode(&tok, &c.text, Special::AsText).unwrap(),
            c.ids,
            "{:?}",
            c.text
        );
        assert_eq!(
            mote::tokenize::encode(&tok, &c.text, Special::Recognize).unwrap(),
            c.ids_special,
            "{:?} with special tokens",
            c.text
        );
        assert_eq!(mote::tokenize::decode(&tok, &c.ids).unwrap(), c.text.as_bytes());
    }
    // And on the corpus samples (full ids of every 500th line of each file).
    let corpus: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/fixtures/tokenizer/gpt2_corpus.json"))
            .unwrap(),
    )
    .unwrap();
    for f in corpus["files"].as_array().unwrap() {
        let text =
            std::fs::read_to_string(shared_data().join(f["path"].as_str().unwrap())).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        for s in f["samples"].as_array().unwrap() {
            let line = lines[s["line"].as_u64().unwrap() as usize];
            let want: Vec<u32> = serde_json::from_value(s["ids"].clone()).unwrap();
            assert_eq!(
                mote::tokenize::encode(&tok, line, Special::AsText).unwrap(),
                want,
                "{line:?}"
            );
        }
    }
}

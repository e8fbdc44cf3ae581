//! mote's tokenizer against Hugging Face `tokenizers` (fixtures written by
//! `tools/py/tokenizer_reference.py`), on GPT-2's real vocabulary from `../shared/data/gpt2-tokenizer`
//! written into a GGUF here, with and without the `mote.tokenizer.*` index, and on the default
//! model's own 2,048-token vocabulary, read from its GGUF (its `tokenizer.json` is the reference).

use std::sync::OnceLock;

use mote_core::gguf::Gguf;
use mote_core::tokenizer::{BpeScratch, Special, StreamDecoder, Tokenizer, TokenizerError};
use mote_tests::{gpt2_files, gpt2_gguf, index_arrays, shared_data};
use proptest::prelude::*;
use serde::Deserialize;

fn fixture(name: &str) -> String {
    let path = mote_tests::repo_root().join("tests/fixtures/tokenizer").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// GPT-2's tokenizer with the index, loaded once (loading checks every string and the index).
fn indexed() -> &'static Tokenizer<'static> {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    static TOK: OnceLock<Tokenizer<'static>> = OnceLock::new();
    TOK.get_or_init(|| tokenizer(BLOB.get_or_init(|| gpt2_gguf(true, &[]))))
}

/// GPT-2's tokenizer without the index (a plain llama.cpp-style GGUF).
fn plain() -> &'static Tokenizer<'static> {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    static TOK: OnceLock<Tokenizer<'static>> = OnceLock::new();
    TOK.get_or_init(|| tokenizer(BLOB.get_or_init(|| gpt2_gguf(false, &[]))))
}

/// The default model's tokenizer, from the GGUF the firmware embeds.
fn default_model() -> &'static Tokenizer<'static> {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    static TOK: OnceLock<Tokenizer<'static>> = OnceLock::new();
    TOK.get_or_init(|| {
        tokenizer(BLOB.get_or_init(|| {
            let path =
                mote_tests::repo_root().join("models/tinystories-base/tinystories-base-q8_0.gguf");
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }))
    })
}

fn tokenizer(blob: &[u8]) -> Tokenizer<'_> {
    let gguf = Gguf::parse(blob).expect("test GGUF parses");
    Tokenizer::from_gguf(&gguf).expect("test GGUF has a tokenizer")
}

fn encode(tok: &Tokenizer<'_>, text: &str, special: Special) -> Result<Vec<u32>, TokenizerError> {
    let mut scratch = BpeScratch::new();
    let mut ids = Vec::new();
    tok.encode_each(text, special, &mut scratch, |id| {
        ids.push(id);
        Ok(())
    })?;
    Ok(ids)
}

fn decode(tok: &Tokenizer<'_>, ids: &[u32]) -> Vec<u8> {
    let mut out = vec![0u8; ids.len() * 256 + 16];
    let n = tok.decode(ids, &mut out).expect("decode");
    out.truncate(n);
    out
}

#[derive(Deserialize)]
struct HardCase {
    text: String,
    ids: Vec<u32>,
    ids_special: Vec<u32>,
}

#[derive(Deserialize)]
struct Hard {
    cases: Vec<HardCase>,
}

fn hard_cases(name: &str) -> Vec<HardCase> {
    serde_json::from_str::<Hard>(&fixture(&format!("{name}_hard.json"))).unwrap().cases
}

fn check_hard_strings(tok: &Tokenizer<'_>, name: &str) {
    let cases = hard_cases(name);
    assert!(cases.len() > 50);
    for c in &cases {
        assert_eq!(encode(tok, &c.text, Special::AsText).unwrap(), c.ids, "text {:?}", c.text);
        assert_eq!(
            encode(tok, &c.text, Special::Recognize).unwrap(),
            c.ids_special,
            "text {:?} with special tokens",
            c.text
        );
        assert_eq!(decode(tok, &c.ids), c.text.as_bytes(), "decode of {:?}", c.text);
    }
}

#[test]
fn matches_hugging_face_on_hard_strings_with_the_index() {
    let tok = indexed();
    assert!(tok.vocab().has_index());
    check_hard_strings(tok, "gpt2");
}

#[test]
fn matches_hugging_face_on_hard_strings_without_the_index() {
    let tok = plain();
    assert!(!tok.vocab().has_index());
    check_hard_strings(tok, "gpt2");
}

#[test]
fn default_model_matches_hugging_face_on_hard_strings() {
    let tok = default_model();
    assert_eq!(tok.n_vocab(), 2048);
    assert!(tok.vocab().has_index());
    check_hard_strings(tok, "tinystories_base");
}

#[test]
fn default_model_matches_hugging_face_on_every_line_of_tinystories_and_tinyshakespeare() {
    // Written after the shared data gained its 2 MiB and TinyStoriesV2 train heads: six files.
    check_corpus(default_model(), "tinystories_base", 6);
}

/// FNV-1a 64 over each line's ids (4 bytes LE each) then ff ff ff ff, as the fixture script does.
fn hash_lines(lines: &[Vec<u32>]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |bytes: [u8; 4]| {
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    for ids in lines {
        for id in ids {
            eat(id.to_le_bytes());
        }
        eat([0xff; 4]);
    }
    h
}

#[derive(Deserialize)]
struct Sample {
    line: usize,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct CorpusFile {
    path: String,
    lines: usize,
    ids: usize,
    chunk: usize,
    chunk_hashes: Vec<String>,
    samples: Vec<Sample>,
}

#[derive(Deserialize)]
struct Corpus {
    files: Vec<CorpusFile>,
}

#[test]
fn matches_hugging_face_on_every_line_of_tinystories_and_tinyshakespeare() {
    check_corpus(indexed(), "gpt2", 4);
}

/// Every line of the `n_files` corpus files of `{name}_corpus.json` encodes to its ids.
fn check_corpus(tok: &Tokenizer<'_>, name: &str, n_files: usize) {
    let corpus: Corpus = serde_json::from_str(&fixture(&format!("{name}_corpus.json"))).unwrap();
    assert_eq!(corpus.files.len(), n_files);
    for f in &corpus.files {
        let text = std::fs::read_to_string(shared_data().join(&f.path)).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), f.lines, "{}", f.path);
        let ids: Vec<Vec<u32>> =
            lines.iter().map(|l| encode(tok, l, Special::AsText).unwrap()).collect();
        for s in &f.samples {
            assert_eq!(ids[s.line], s.ids, "{} line {}: {:?}", f.path, s.line, lines[s.line]);
        }
        for (k, (chunk, want)) in ids.chunks(f.chunk).zip(&f.chunk_hashes).enumerate() {
            let got = format!("{:016x}", hash_lines(chunk));
            assert_eq!(
                &got,
                want,
                "{} lines {}..{} differ from Hugging Face; run \
                 `python3 tools/py/tokenizer_reference.py --show LINE` on them",
                f.path,
                k * f.chunk,
                k * f.chunk + chunk.len()
            );
        }
        assert_eq!(ids.iter().map(Vec::len).sum::<usize>(), f.ids, "{}", f.path);
        // Whole lines decode back to themselves.
        for (l, i) in lines.iter().zip(&ids).step_by(97) {
            assert_eq!(decode(tok, i), l.as_bytes());
        }
    }
}

#[test]
fn scans_without_the_index_agree_with_hugging_face_on_a_corpus_sample() {
    let tok = plain();
    let corpus: Corpus = serde_json::from_str(&fixture("gpt2_corpus.json")).unwrap();
    for f in &corpus.files {
        let text = std::fs::read_to_string(shared_data().join(&f.path)).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        for s in f.samples.iter().step_by(8) {
            assert_eq!(encode(tok, lines[s.line], Special::AsText).unwrap(), s.ids);
        }
    }
}

#[derive(Deserialize)]
struct SweepBlock {
    start: u32,
    hash: String,
}

#[derive(Deserialize)]
struct Sweep {
    block: u32,
    blocks: Vec<SweepBlock>,
}

#[test]
fn matches_hugging_face_on_every_unicode_character() {
    let tok = indexed();
    let sweep: Sweep = serde_json::from_str(&fixture("gpt2_unicode_sweep.json")).unwrap();
    assert_eq!(sweep.blocks.len(), 0x110000 / sweep.block as usize - 0x800 / sweep.block as usize);
    let mut mismatched = Vec::new();
    for b in &sweep.blocks {
        let mut text = String::new();
        for c in (b.start..b.start + sweep.block).filter_map(char::from_u32) {
            text.extend(['a', c, ' ', c, '1', c, 'x', ' ', c, c]);
        }
        let ids = encode(tok, &text, Special::AsText).unwrap();
        if format!("{:016x}", hash_lines(&[ids])) != b.hash {
            mismatched.push(format!("U+{:04X}..U+{:04X}", b.start, b.start + sweep.block - 1));
        }
    }
    assert!(mismatched.is_empty(), "blocks that differ from Hugging Face: {mismatched:?}");
}

#[test]
fn stream_decoding_emits_each_character_as_soon_as_it_is_complete() {
    let tok = indexed();
    for c in hard_cases("gpt2") {
        let mut out = String::new();
        let mut stream = StreamDecoder::new();
        let mut decoded = 0; // bytes of the text that the ids so far stand for
        for &id in &c.ids {
            tok.decode_stream(id, &mut stream, &mut |s: &str| out.push_str(s)).unwrap();
            tok.token_bytes(id, |b| decoded += b.len()).unwrap();
            // Exactly the complete characters so far: the longest char-boundary prefix.
            let complete = (0..=decoded).rev().find(|&i| c.text.is_char_boundary(i)).unwrap();
            assert_eq!(out, c.text[..complete], "after id {id} of {:?}", c.text);
        }
        stream.finish(&mut |s: &str| out.push_str(s));
        assert_eq!(out, c.text);
    }
}

fn check_rejects(arrays: [(&'static str, Vec<u32>); 3], key: &str, at: usize) {
    let blob = gpt2_gguf(false, &arrays);
    let gguf = Gguf::parse(&blob).unwrap();
    match Tokenizer::from_gguf(&gguf) {
        Err(TokenizerError::BadIndex { key: k, at: a }) if k == key && a == at => {}
        other => panic!("expected BadIndex {key} at {at}, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn rejects_a_corrupt_index() {
    let (tokens, merges) = gpt2_files();
    let good = index_arrays(&tokens, &merges);
    // Two token ids swapped in the sorted order.
    let mut a = good.clone();
    a[1].1.swap(10, 11);
    check_rejects(a, "mote.tokenizer.token_order", 11);
    // A token offset that points into the middle of a record.
    let mut a = good.clone();
    a[0].1[7] += 1;
    check_rejects(a, "mote.tokenizer.token_offsets", 7);
    // A merge row with the wrong merged id: found when merge rank 0 ("Ġ t") is checked.
    let mut a = good.clone();
    let rows = &mut a[2].1;
    let row = rows.chunks(4).position(|r| r[2] == 0).unwrap();
    rows[4 * row + 3] += 1;
    check_rejects(a, "mote.tokenizer.merge_pairs", 0);
    // Rows out of order.
    let mut a = good;
    for k in 0..4 {
        a[2].1.swap(k, 4 + k);
    }
    check_rejects(a, "mote.tokenizer.merge_pairs", 1);
}

#[test]
fn rejects_a_partial_index() {
    let (tokens, merges) = gpt2_files();
    let [offsets, ..] = index_arrays(&tokens, &merges);
    let blob = gpt2_gguf(false, &[offsets]);
    let gguf = Gguf::parse(&blob).unwrap();
    assert!(matches!(Tokenizer::from_gguf(&gguf), Err(TokenizerError::PartialIndex)));
}

#[test]
fn rejects_a_word_longer_than_the_scratch_and_a_full_output() {
    let tok = indexed();
    let long = "a".repeat(mote_core::tokenizer::MAX_PRETOKEN_BYTES + 1);
    assert_eq!(
        encode(tok, &long, Special::AsText),
        Err(TokenizerError::PretokenTooLong { len: long.len(), max: 512 })
    );
    let mut out = [0u32; 2];
    assert_eq!(
        tok.encode("one two three", Special::AsText, &mut BpeScratch::new(), &mut out),
        Err(TokenizerError::OutputFull { capacity: 2 })
    );
    assert_eq!(tok.bos(), Some(50256));
    assert_eq!(tok.eos(), Some(50256));
    assert!(matches!(
        tok.token_bytes(50257, |_| {}),
        Err(TokenizerError::IdOutOfRange { id: 50257, n_vocab: 50257 })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_of_encode_is_the_text(text in "\\PC{0,40}|[ \\t\\n'a-zA-Z0-9.,!?]{0,60}|.{0,20}") {
        let tok = indexed();
        let ids = encode(tok, &text, Special::AsText).unwrap();
        prop_assert_eq!(decode(tok, &ids), text.as_bytes());
    }

    #[test]
    fn decode_of_encode_is_the_text_for_any_string(text in any::<String>()) {
        let tok = indexed();
        let ids = encode(tok, &text, Special::AsText).unwrap();
        prop_assert_eq!(decode(tok, &ids), text.as_bytes());
    }

    #[test]
    fn scans_and_index_give_the_same_ids(text in "\\PC{0,12}|[ a-z'.]{0,16}") {
        prop_assert_eq!(
            encode(plain(), &text, Special::Recognize).unwrap(),
            encode(indexed(), &text, Special::Recognize).unwrap()
        );
    }

    #[test]
    fn stream_decoder_output_is_the_lossy_text_of_any_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        cuts in proptest::collection::vec(0usize..64, 0..6),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.sort();
        let mut out = String::new();
        let mut stream = StreamDecoder::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            stream.push(&bytes[at..c], &mut |s: &str| out.push_str(s));
            at = c;
        }
        stream.finish(&mut |s: &str| out.push_str(s));
        prop_assert_eq!(out, String::from_utf8_lossy(&bytes));
    }
}

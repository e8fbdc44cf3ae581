//! The chat loop driven through in-memory streams with the bundled model: sequences of good and
//! bad lines, what each one gets back, and that nothing typed stops the loop.

use std::convert::Infallible;

use mote_chat::ChatError;
use mote_chat::{Chat, LineReader, PROMPT_MARKER};
use mote_core::beam::BeamSearch;
use mote_core::gguf::Gguf;
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::state::{KvType, StateError};
use mote_core::tokenizer::{BpeScratch, Tokenizer};
use mote_core::Math;
use proptest::prelude::*;

/// The bundled model, read once.
fn model_bytes() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/tinystories-base/tinystories-base-q8_0.gguf"
        );
        std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    })
}

/// A console: bytes to read, and everything written.
struct Console<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl embedded_io::ErrorType for Console<'_> {
    type Error = Infallible;
}

impl embedded_io::Read for Console<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        self.input.read(buf)
    }
}

impl embedded_io::Write for Console<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// The most beams the conversations' storage holds.
const BEAMS: usize = 3;

/// Everything the chat writes when `input` is typed, with a line buffer of `line_bytes`.
fn converse(input: &[u8], line_bytes: usize) -> String {
    converse_in(input, line_bytes, Math::Float)
}

/// [`converse`] with the forward pass in `math`.
fn converse_in(input: &[u8], line_bytes: usize, math: Math) -> String {
    let gguf = Gguf::parse(model_bytes()).unwrap();
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&gguf, &mut layers).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    let mut storage = vec![0u8; BeamSearch::bytes_needed(&model.hparams, KvType::Q8_0, BEAMS)];
    let mut scratch = Box::new(BpeScratch::new());
    let mut ids = vec![0u32; model.hparams.n_ctx + 1];
    let mut line = vec![0u8; line_bytes];
    let mut chat =
        Chat::new(&model, &tokenizer, KvType::Q8_0, &mut storage, &mut scratch, &mut ids)
            .and_then(|c| c.with_math(math))
            .unwrap();
    assert_eq!(chat.max_beams(), BEAMS);
    let mut console = Console { input, output: Vec::new() };
    chat.run(&mut LineReader::new(&mut line), &mut console, &mut ()).unwrap();
    String::from_utf8(console.output).expect("the chat writes UTF-8 only")
}

/// The answers, one per line read: the text between one prompt marker and the next.
fn answers(output: &str) -> Vec<&str> {
    let rest = output.strip_prefix(PROMPT_MARKER).expect("starts with the marker");
    let mut answers: Vec<&str> = rest.split(&format!("\n{PROMPT_MARKER}")).collect();
    assert_eq!(answers.pop(), Some(""), "ends with the marker");
    answers
}

#[test]
fn a_prompt_gets_text_then_the_generate_summary_line() {
    let out = converse(b"Once upon a time\n", 256);
    let answers = answers(&out);
    assert_eq!(answers.len(), 1);
    let (text, summary) = answers[0].rsplit_once('\n').unwrap();
    assert!(!text.is_empty());
    assert!(
        summary.starts_with("summary: kv=q8_0 prompt=[")
            && summary.contains(" stop=\"token limit\""),
        "{summary}"
    );
    // 64 tokens by default.
    let generated = summary.split("generated=[").nth(1).unwrap().split(']').next().unwrap();
    assert_eq!(generated.split(", ").count(), 64);
}

#[test]
fn every_bad_line_gets_one_error_line_and_the_loop_goes_on() {
    let long = "x".repeat(100);
    let too_many_tokens = "a b ".repeat(70); // 140 tokens > n_ctx 128, 280 bytes
    let head = format!("/max-tokens 3\n{long}\n");
    let tail = format!(
        "\n\n/frobnicate\n/temperature -1\n/top-p 2\n/seed x\n\
         /max-tokens 0\n/max-tokens 129\n/top-k\n/help me\n{too_many_tokens}\nhello\n"
    );
    let input = [head.as_bytes(), b"\xff\xfe", tail.as_bytes()].concat();
    let out = converse(&input, 300);
    let answers = answers(&out);
    assert_eq!(answers.len(), 14, "{out}");
    assert_eq!(
        answers[0],
        "settings: temperature 0 top-k off top-p 1 repetition-penalty 1 no-repeat-ngram-size 0 \
         seed 0 max-tokens 3 beams 1 length-penalty 1 early-stopping false num-return-sequences 1 \
         min-new-tokens 0 ignore-eos false (greedy)"
    );
    let errors = &answers[2..13];
    for a in errors {
        assert!(a.starts_with("error: ") && !a.contains('\n'), "one error line: {a:?}");
    }
    assert!(answers[2].contains("not UTF-8"));
    assert!(answers[3].contains("no tokens"));
    assert!(answers[4].contains("unknown command \"/frobnicate\""));
    assert!(answers[5].contains("temperature \"-1\" must be"));
    assert!(answers[6].contains("top-p \"2\" must be in (0, 1]"));
    assert!(answers[7].contains("\"x\" is not"));
    assert!(answers[8].contains("max-tokens 0"));
    assert!(answers[9].contains("max-tokens 129"));
    assert!(answers[10].contains("/top-k needs a value"));
    assert!(answers[11].contains("\"me\""));
    assert!(answers[12].contains("more tokens than the context holds (128)"));
    // The bad lines changed nothing: the last prompt still gets 3 greedy tokens.
    let summary = answers[13].rsplit_once('\n').unwrap().1;
    assert!(summary.starts_with("summary: "), "{summary}");
    // The reply's text may hold newlines of its own: its last line is the summary.
    let reply = answers[1].rsplit_once('\n').map_or("", |(_, last)| last);
    assert!(
        reply.starts_with("summary: ") && reply.contains("stop=\"token limit\""),
        "a 100-byte prompt is answered: {}",
        answers[1]
    );
}

#[test]
fn a_line_longer_than_the_buffer_is_one_error_and_its_tail_is_not_a_prompt() {
    let out = converse(format!("{}\n/settings\n", "y".repeat(50)).as_bytes(), 16);
    let answers = answers(&out);
    assert_eq!(answers.len(), 2, "{out}");
    assert_eq!(
        answers[0],
        "error: the line is longer than the 16-byte input buffer; it was discarded"
    );
    assert!(answers[1].starts_with("settings: "));
}

#[test]
fn settings_last_until_changed_and_a_seed_repeats_its_reply() {
    let input = b"/max-tokens 8\n/temperature 0.8\n/top-k 40\n/top-p 0.9\n/seed 1234\n\
                  The dog\nThe dog\n/greedy\n/settings\nThe dog\n";
    let out = converse(input, 64);
    let a = answers(&out);
    assert_eq!(a.len(), 10, "{out}");
    assert_eq!(a[5], a[6], "same seed, same settings: same reply");
    assert!(a[7].contains(" max-tokens 8 ") && a[7].ends_with("(greedy)"), "{}", a[7]);
    assert_eq!(a[7], a[8]);
    assert_ne!(a[5], a[9], "greedy differs from the seeded sample");
    let tokens = a[9].split("generated=[").nth(1).unwrap().split(']').next().unwrap();
    assert_eq!(tokens.split(", ").count(), 8);
}

#[test]
fn streamed_text_is_the_decoded_reply() {
    let out = converse(b"/max-tokens 40\nOnce upon a time\n", 64);
    let a = answers(&out);
    let (text, summary) = a[1].rsplit_once('\n').unwrap();
    let ids: Vec<u32> = summary
        .split("generated=[")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(", ")
        .map(|s| s.parse().unwrap())
        .collect();
    let gguf = Gguf::parse(model_bytes()).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    let mut bytes = vec![0u8; 4096];
    let n = tokenizer.decode(&ids, &mut bytes).unwrap();
    assert_eq!(text, String::from_utf8_lossy(&bytes[..n]));
}

/// The generated ids of a reply's summary line.
fn generated(answer: &str) -> Vec<u32> {
    let list = answer.split("generated=[").nth(1).unwrap().split(']').next().unwrap();
    list.split(", ").filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect()
}

#[test]
fn a_beam_reply_is_the_best_sequence_then_the_summary() {
    let input = [
        "/max-tokens 12",
        "/beams 3",
        "/early-stopping never",
        "Once upon a time",
        "/num-return-sequences 3",
        "Once upon a time",
        "/beams 1",
        "/num-return-sequences 1",
        "/beams 1",
        "Once upon a time\n",
    ]
    .join("\n");
    let out = converse(input.as_bytes(), 64);
    let a = answers(&out);
    assert_eq!(a.len(), 10, "{out}");
    assert!(a[2].ends_with("early-stopping never num-return-sequences 1 min-new-tokens 0 ignore-eos false (beam search)"), "{}", a[2]);
    // One sequence: its text, then the summary with its ids.
    let lines: Vec<&str> = a[3].lines().collect();
    assert_eq!(lines.len(), 2, "{}", a[3]);
    assert!(lines[1].starts_with("summary: kv=q8_0 prompt=["), "{}", lines[1]);
    let best = generated(lines[1]);
    assert!(!best.is_empty() && best.len() <= 12);
    let gguf = Gguf::parse(model_bytes()).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    let mut bytes = vec![0u8; 4096];
    let n = tokenizer.decode(&best, &mut bytes).unwrap();
    assert_eq!(lines[0], String::from_utf8_lossy(&bytes[..n]));
    // Three: numbered, best first, the first the same text; the summary the same ids.
    let lines: Vec<&str> = a[5].lines().collect();
    assert_eq!(lines.len(), 4, "{}", a[5]);
    for (i, l) in lines[..3].iter().enumerate() {
        let (head, _) = l.split_once("): ").unwrap();
        let score: f32 = head.strip_prefix(&format!("{} (score ", i + 1)).unwrap().parse().unwrap();
        assert!(score < 0.0, "{l}");
    }
    assert_eq!(lines[0].split_once("): ").unwrap().1, a[3].lines().next().unwrap());
    assert_eq!(generated(lines[3]), best);
    // K must come down before the beams do; one beam is greedy decoding again.
    assert!(a[6].starts_with("error: 3 return sequences from 1 beam:"), "{}", a[6]);
    assert!(a[8].ends_with("(greedy)"), "{}", a[8]);
    let greedy = converse(
        b"/max-tokens 12
Once upon a time
",
        64,
    );
    assert_eq!(a[9], answers(&greedy)[1]);
}

#[test]
fn bad_beam_settings_get_generates_error_lines_and_change_nothing() {
    let input = [
        "/beams 0",
        "/beams 4",
        "/beams 256",
        "/temperature 0.8",
        "/beams 2",
        "/greedy",
        "/top-k 40",
        "/beams 2",
        "/top-k off",
        "/beams 2",
        "/num-return-sequences 3",
        "/length-penalty inf",
        "/early-stopping sometimes",
        "/ignore-eos maybe",
        "/temperature 0.5",
        "/top-p 0.5",
        "/settings\n",
    ]
    .join("\n");
    let out = converse(input.as_bytes(), 64);
    let a = answers(&out);
    assert_eq!(a.len(), 17, "{out}");
    let want = [
        "error: 0 beams keep no sequence; give 1 (no beam search) or more",
        "error: 4 beams are more than this build's storage holds (3); build with `cargo xtask \
         firmware --bin chat --num-beams 4` for more",
        "error: 256 beams are more than mote's beam search holds; give at most 255",
        "",
        "error: beam search with sampling (a temperature above 0 with more than 1 beam) is not \
         supported",
        "",
        "",
        "error: top-k and top-p are sampling controls; beam search does not sample",
        "",
        "",
        "error: 3 return sequences from 2 beams: give 1 to 2 (beam search returns at most one \
         sequence per beam)",
        "error: length penalty inf must be a finite number",
        "error: /early-stopping \"sometimes\" is none of true, false, never",
        "error: /ignore-eos \"maybe\" is none of true, false",
        "error: beam search with sampling (a temperature above 0 with more than 1 beam) is not \
         supported",
        "error: top-k and top-p are sampling controls; beam search does not sample",
    ];
    for (i, w) in want.iter().enumerate() {
        if w.is_empty() {
            assert!(a[i].starts_with("settings: "), "line {i}: {}", a[i]);
        } else {
            assert_eq!(a[i], *w, "line {i}");
        }
    }
    assert!(a[16].contains(" beams 2 ") && a[16].ends_with("(beam search)"), "{}", a[16]);
}

#[test]
fn min_new_tokens_and_ignore_eos_last_through_greedy_and_apply_to_beams() {
    // (That they hold back the end of text as `mote generate` does is host/tests/chat.rs's.)
    let input = [
        "/max-tokens 8",
        "/min-new-tokens 6",
        "/ignore-eos true",
        "The end.",
        "/beams 2",
        "The end.",
        "/greedy",
        "/min-new-tokens 100000000000000000000",
        "/settings\n",
    ]
    .join("\n");
    let out = converse(input.as_bytes(), 64);
    let a = answers(&out);
    assert_eq!(a.len(), 9, "{out}");
    assert!(a[2].contains("min-new-tokens 6 ignore-eos true (greedy)"), "{}", a[2]);
    assert_eq!(generated(a[3]).len(), 8, "{}", a[3]);
    assert_eq!(generated(a[5]).len(), 8, "{}", a[5]);
    assert!(a[6].contains(" beams 1 ") && a[6].contains("min-new-tokens 6 ignore-eos true"));
    assert!(a[7].starts_with("error: /min-new-tokens \"1000"), "{}", a[7]);
    assert_eq!(a[8], a[6]);
}

#[test]
fn end_of_input_without_a_line_end_still_answers_the_last_line() {
    let a = converse(b"/max-tokens 2\nhello", 64);
    assert_eq!(answers(&a).len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary bytes, in lines: one answer per line, never a panic.
    #[test]
    fn any_bytes_get_one_answer_per_line(lines in prop::collection::vec(
        prop::collection::vec(any::<u8>().prop_filter("no line end", |b| *b != b'\n' && *b != b'\r'), 0..40),
        1..6,
    )) {
        let mut input = b"/max-tokens 2\n".to_vec();
        for l in &lines {
            input.extend_from_slice(l);
            input.push(b'\n');
        }
        let out = converse(&input, 24);
        prop_assert_eq!(answers(&out).len(), lines.len() + 1);
    }
}

/// The integer path's reply to "Once upon a time", 24 tokens, greedy: the ids and the logits'
/// checksum that `mote generate --math integer` gives (pinned in tests/tests/integer.rs).
#[test]
fn a_chat_with_integer_math_replies_as_the_integer_path() {
    let input = b"/max-tokens 24\nOnce upon a time\n/beams 2\nOnce upon a time\n";
    let out = converse_in(input, 256, Math::Integer);
    let answers = answers(&out);
    assert_eq!(answers.len(), 4, "{out}");
    let summary = answers[1].rsplit_once('\n').unwrap().1;
    assert!(
        summary.contains(
            "generated=[12, 402, 282, 259, 396, 461, 462, 410, 14, 318, 527, 267, 348, 336, 316, \
             660, 265, 558, 316, 446, 14, 544, 344, 12]"
        ) && summary.contains("logits_checksum=0x400b694e"),
        "{summary}"
    );
    assert_eq!(answers[3], "error: beam search runs the float path only; /beams 1");
}

#[test]
fn integer_math_needs_a_q8_0_cache() {
    let gguf = Gguf::parse(model_bytes()).unwrap();
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&gguf, &mut layers).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    let mut storage = vec![0u8; BeamSearch::bytes_needed(&model.hparams, KvType::F16, 1)];
    let mut scratch = Box::new(BpeScratch::new());
    let mut ids = vec![0u32; model.hparams.n_ctx + 1];
    let refused = Chat::new(&model, &tokenizer, KvType::F16, &mut storage, &mut scratch, &mut ids)
        .and_then(|c| c.with_math(Math::Integer))
        .err();
    assert!(matches!(
        refused,
        Some(ChatError::State(StateError::IntegerNeedsQ8_0Kv { kv: KvType::F16 }))
    ));
}

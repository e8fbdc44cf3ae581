//! The chat loop's replies against `mote generate --json`: for the same prompt and settings, the
//! summary line holds the same prompt ids, generated ids, stop reason and logits checksum (with
//! beams, of the best sequence); a beam reply's text is `mote generate`'s printed text.

use std::convert::Infallible;

use mote_chat::{Chat, LineReader, PROMPT_MARKER};
use mote_core::beam::BeamSearch;
use mote_core::gguf::Gguf;
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::state::KvType;
use mote_core::tokenizer::{BpeScratch, Tokenizer};
use mote_tests::{mote, mote_json, repo_root};

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

/// A prompt, the chat commands that set it up, and the same settings as `mote generate` flags.
struct Case {
    commands: &'static [&'static str],
    flags: &'static [&'static str],
    prompt: &'static str,
}

/// Beams the chat's storage holds.
const BEAMS: usize = 3;

const CASES: [Case; 9] = [
    Case { commands: &[], flags: &[], prompt: "Once upon a time" },
    Case { commands: &["/max-tokens 20"], flags: &["--max-tokens", "20"], prompt: "The cat sat" },
    Case {
        commands: &["/temperature 0.8", "/top-k 40", "/top-p 0.9", "/seed 1234"],
        flags: &[
            "--max-tokens",
            "20",
            "--temperature",
            "0.8",
            "--top-k",
            "40",
            "--top-p",
            "0.9",
            "--seed",
            "1234",
        ],
        prompt: "Once upon a time",
    },
    Case {
        commands: &["/repetition-penalty 1.3", "/no-repeat-ngram-size 3", "/seed 7"],
        flags: &[
            "--max-tokens",
            "20",
            "--temperature",
            "0.8",
            "--top-k",
            "40",
            "--top-p",
            "0.9",
            "--repetition-penalty",
            "1.3",
            "--no-repeat-ngram-size",
            "3",
            "--seed",
            "7",
        ],
        prompt: "Tom and Sue went to the park. ",
    },
    Case {
        commands: &["/greedy", "/max-tokens 128"],
        flags: &["--max-tokens", "128"],
        prompt: "A girl named Lily had a red ball and a big dog.",
    },
    Case {
        commands: &["/max-tokens 5"], flags: &["--max-tokens", "5"], prompt: "Héllo — 日本"
    },
    Case {
        commands: &[
            "/max-tokens 24",
            "/beams 3",
            "/length-penalty 0.5",
            "/early-stopping never",
            "/no-repeat-ngram-size 2",
        ],
        flags: &[
            "--max-tokens",
            "24",
            "--num-beams",
            "3",
            "--length-penalty",
            "0.5",
            "--early-stopping",
            "never",
            "--no-repeat-ngram-size",
            "2",
        ],
        prompt: "Once upon a time",
    },
    Case {
        commands: &["/num-return-sequences 3", "/early-stopping true", "/min-new-tokens 10"],
        flags: &[
            "--max-tokens",
            "24",
            "--num-beams",
            "3",
            "--length-penalty",
            "0.5",
            "--early-stopping",
            "true",
            "--no-repeat-ngram-size",
            "2",
            "--num-return-sequences",
            "3",
            "--min-new-tokens",
            "10",
        ],
        prompt: "The little dog",
    },
    Case {
        commands: &["/greedy", "/ignore-eos true"],
        flags: &["--max-tokens", "24", "--min-new-tokens", "10", "--ignore-eos"],
        prompt: "The little dog",
    },
];

#[test]
fn replies_match_mote_generate_json() {
    let path = repo_root().join("models/tinystories-base/tinystories-base-q8_0.gguf");
    let bytes = std::fs::read(&path).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&gguf, &mut layers).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    let mut storage = vec![0u8; BeamSearch::bytes_needed(&model.hparams, KvType::Q8_0, BEAMS)];
    let mut scratch = Box::new(BpeScratch::new());
    let mut ids = vec![0u32; model.hparams.n_ctx + 1];
    let mut line = vec![0u8; 512];
    let mut chat =
        Chat::new(&model, &tokenizer, KvType::Q8_0, &mut storage, &mut scratch, &mut ids).unwrap();

    // One conversation, settings carried over from case to case as a person would type them.
    let mut input = String::new();
    for case in &CASES {
        for c in case.commands {
            input.push_str(c);
            input.push('\n');
        }
        input.push_str(case.prompt);
        input.push('\n');
    }
    let mut console = Console { input: input.as_bytes(), output: Vec::new() };
    chat.run(&mut LineReader::new(&mut line), &mut console, &mut ()).unwrap();
    let output = String::from_utf8(console.output).unwrap();
    let summaries: Vec<&str> = output.lines().filter_map(|l| l.strip_prefix("summary: ")).collect();
    assert_eq!(summaries.len(), CASES.len(), "{output}");
    assert!(output.ends_with(PROMPT_MARKER));
    // Each reply's text: what comes before its summary line, after the last marker.
    let texts: Vec<&str> = output
        .split("summary: ")
        .map(|chunk| chunk.rsplit_once(PROMPT_MARKER).map_or(chunk, |(_, t)| t))
        .take(CASES.len())
        .collect();

    let mut stops = std::collections::BTreeSet::new();
    for ((case, summary), text) in CASES.iter().zip(&summaries).zip(&texts) {
        let model_arg = path.to_str().unwrap();
        let mut args = vec!["generate", "--json", "--kv", "q8_0", "--model", model_arg];
        args.extend(["--prompt", case.prompt]);
        args.extend(case.flags);
        let json = mote_json(&args);
        let list = |key: &str| {
            let ids: Vec<String> =
                json[key].as_array().unwrap().iter().map(|v| v.to_string()).collect();
            format!("[{}]", ids.join(", "))
        };
        let want = format!(
            "kv={} prompt={} generated={} stop=\"{}\" logits_checksum={}",
            json["kv"].as_str().unwrap(),
            list("prompt_ids"),
            list("generated_ids"),
            json["stop"].as_str().unwrap(),
            json["logits_checksum"].as_str().unwrap()
        );
        assert_eq!(*summary, want, "prompt {:?}", case.prompt);
        stops.insert(json["stop"].as_str().unwrap().to_string());
        if case.flags.contains(&"--num-beams") {
            // The best sequence's text, or the K best numbered with their scores, as printed.
            let args: Vec<&str> = args.iter().filter(|a| **a != "--json").copied().collect();
            let plain = mote(&args);
            assert!(plain.status.success());
            assert_eq!(*text, String::from_utf8(plain.stdout).unwrap(), "{:?}", case.commands);
        }
    }
    // The cases reach more than one stop rule (the 128-token case fills the context).
    assert!(stops.len() >= 2, "{stops:?}");
}

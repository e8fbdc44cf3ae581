//! Input and output conveniences of the CLI: `-` for standard input (`generate --prompt-file`,
//! `eval --text`, `tokenize --file`), and `eval`'s progress bar, drawn only on a terminal. All on
//! the bundled model.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use mote_tests::mote_bin;
use serde_json::Value;

const TEXT: &str =
    "Once upon a time, there was a little dog. He liked to run in the park with his friends.";

/// Runs `mote ARGS` with `stdin` as its standard input.
fn with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(mote_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_dash_reads_standard_input_like_the_same_text_given_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text.txt");
    std::fs::write(&file, TEXT).unwrap();
    let f = file.to_str().unwrap();

    let from_stdin = json(&with_stdin(&["tokenize", "--file", "-", "--json"], TEXT));
    let from_arg = json(&with_stdin(&["tokenize", TEXT, "--json"], ""));
    assert_eq!(from_stdin["ids"], from_arg["ids"]);
    assert!(!from_stdin["ids"].as_array().unwrap().is_empty());

    let gen = ["generate", "--max-tokens", "8", "--json"];
    let from_stdin = json(&with_stdin(&[&gen[..], &["--prompt-file", "-"]].concat(), TEXT));
    let from_arg = json(&with_stdin(&[&gen[..], &["--prompt", TEXT]].concat(), ""));
    assert_eq!(from_stdin["prompt_ids"], from_arg["prompt_ids"]);
    assert_eq!(from_stdin["generated_ids"], from_arg["generated_ids"]);

    let from_stdin = json(&with_stdin(&["eval", "--text", "-", "--json"], TEXT));
    let from_file = json(&with_stdin(&["eval", "--text", f, "--json"], ""));
    assert_eq!(from_stdin["mean_nll"], from_file["mean_nll"]);
    assert_eq!(from_stdin["n_tokens"], from_file["n_tokens"]);
}

#[test]
fn standard_input_that_is_not_utf8_is_refused_in_one_line() {
    let o = with_stdin(&["tokenize", "--file", "-"], "ab\u{0}");
    assert!(o.status.success(), "NUL is valid UTF-8");
    let mut child = Command::new(mote_bin())
        .args(["eval", "--text", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"caf\xe9 au lait").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not valid UTF-8") && err.contains("offset 3"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn eval_draws_a_progress_bar_on_a_terminal_and_none_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text.txt");
    std::fs::write(&file, TEXT.repeat(20)).unwrap();
    let eval = format!("{} eval --text {}", mote_bin().display(), file.display());

    // In a pipe: the result on stdout, nothing on stderr.
    let o = Command::new("sh").args(["-c", &eval]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));

    // On a pseudo-terminal (util-linux `script`), the bar counts tokens.
    let o = Command::new("script").args(["-qec", &eval, "/dev/null"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let screen = String::from_utf8_lossy(&o.stdout);
    // The result line, `tokens N  predicted ...`, comes last.
    let n_tokens = screen
        .rsplit("tokens ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no result line:\n{screen}"));
    assert!(
        screen.contains(&format!("/{n_tokens} tokens")),
        "no progress bar counting {n_tokens} tokens on the terminal:\n{screen}"
    );
}

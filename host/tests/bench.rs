//! `mote bench` end to end: the report's shape, a stand-in `llama-bench` read through
//! `MOTE_LLAMA_BENCH`, and the refusals. No timing is asserted, only that rates were measured.

use std::process::Command;

use serde_json::Value;

fn mote(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mote"));
    c.args(args).env_remove("MOTE_LLAMA_BENCH");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run mote")
}

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn reports_prompt_and_decode_rates_of_the_bundled_model() {
    let args = ["bench", "--prompt-tokens", "5", "--tokens", "4", "--repeat", "2", "--no-llama"];
    let j = json(&mote(&[&args[..], &["--json"]].concat(), &[]));
    assert_eq!((j["n_embd"].as_u64(), j["n_vocab"].as_u64()), (Some(128), Some(2048)));
    assert_eq!((j["prompt_tokens"].as_u64(), j["decode_tokens"].as_u64()), (Some(5), Some(4)));
    assert!(j["prompt_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(j["prompt_unbatched_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(j["decode_tokens_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!((j["threads"].as_u64(), j["batch"].as_u64()), (Some(1), Some(64)));
    assert!(["avx2", "portable"].contains(&j["kernel"].as_str().unwrap()));
    assert_eq!(j["kv"], "f16");
    assert!(j["llama_cpp"].is_null());
    let text = mote(&args, &[]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("prompt") && text.contains("decode"), "{text}");
}

#[cfg(unix)]
#[test]
fn runs_llama_bench_from_the_environment_and_reports_the_ratio() {
    use std::os::unix::fs::PermissionsExt as _;
    // A stand-in that checks it was given a readable model and the agreed flags, then prints what
    // llama-bench prints for `-o json`.
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("llama-bench");
    std::fs::write(
        &exe,
        "#!/bin/sh\n\
         [ \"$1\" = -m ] && [ -s \"$2\" ] || exit 3\n\
         shift 2\n\
         [ \"$*\" = \"-p 0 -n 4 -t 2 -r 1 -o json\" ] || exit 4\n\
         echo '[{\"n_prompt\": 0, \"n_gen\": 4, \"avg_ts\": 250.0}]'\n",
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = exe.to_str().unwrap();
    // llama.cpp runs on as many threads as mote.
    let args = [
        "bench",
        "--prompt-tokens",
        "3",
        "--tokens",
        "4",
        "--repeat",
        "1",
        "--threads",
        "2",
        "--json",
    ];
    let j = json(&mote(&args, &[("MOTE_LLAMA_BENCH", exe)]));
    let l = &j["llama_cpp"];
    assert_eq!(l["decode_tokens_per_second"].as_f64(), Some(250.0));
    let ratio = j["decode_tokens_per_second"].as_f64().unwrap() / 250.0;
    assert!((l["ratio"].as_f64().unwrap() - ratio).abs() <= 1e-9 * ratio);
    assert!(l["command"].as_str().unwrap().contains("-p 0 -n 4 -t 2"));
    assert_eq!(j["threads"].as_u64(), Some(2));
}

#[test]
fn refuses_counts_past_the_context_and_a_missing_llama_bench() {
    let out = mote(&["bench", "--tokens", "129", "--no-llama"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tokens 129") && err.contains("128"), "{err}");
    let out =
        mote(&["bench", "--tokens", "2"], &[("MOTE_LLAMA_BENCH", "/nonexistent/llama-bench")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MOTE_LLAMA_BENCH") && err.contains("/nonexistent/llama-bench"), "{err}");
}

//! `mote inspect` on a model converted from the shared fake GPT-2, and on a damaged file.

use mote_tests::{mote, mote_json, repo_root, shared_data};
use std::path::{Path, PathBuf};

fn converted_fake_gpt2(dir: &Path) -> PathBuf {
    let out = dir.join("fake.gguf");
    let data = shared_data();
    let o = mote(&[
        "convert".as_ref(),
        data.join("hf-lmbuddy-fake-gpt2").as_os_str(),
        "--tokenizer".as_ref(),
        data.join("gpt2-tokenizer").as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn json_report_lists_metadata_tensors_totals_and_flash() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted_fake_gpt2(tmp.path());
    let r = mote_json(&["inspect", model.to_str().unwrap(), "--json"]);
    let size = std::fs::metadata(&model).unwrap().len();
    assert_eq!(r["memory"]["flash_bytes"], size);
    assert_eq!(r["totals"]["tensors"], 16);
    // 102,640 parameters, as the checkpoint's PROVENANCE says.
    assert_eq!(r["totals"]["parameters"], 102_640);
    let tokens = r["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "tokenizer.ggml.tokens")
        .unwrap();
    assert_eq!(tokens["value"]["len"], 50257, "long arrays are summarised");
    let wte =
        r["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "token_embd.weight").unwrap();
    assert_eq!((wte["type"].as_str(), wte["bytes"].as_u64()), (Some("F16"), Some(50257 * 2 * 2)));
    assert_eq!(wte["shape"], serde_json::json!([2, 50257]));
}

#[test]
fn text_report_has_a_tensor_table() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted_fake_gpt2(tmp.path());
    let o = mote(&["inspect".as_ref(), model.as_os_str()]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for needle in ["gpt2.block_count", "blk.0.attn_qkv.weight", "position_embd.weight", "flash"] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn rejects_a_truncated_model_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted_fake_gpt2(tmp.path());
    let blob = std::fs::read(&model).unwrap();
    let cut = tmp.path().join("cut.gguf");
    std::fs::write(&cut, &blob[..blob.len() - 100]).unwrap();
    let o = mote(&["inspect".as_ref(), cut.as_os_str()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("cut.gguf") && err.contains("past the end") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn ram_plan_is_the_run_state_the_core_sizes_for_each_kv_type() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted_fake_gpt2(tmp.path());
    let o = mote(&["inspect".as_ref(), model.as_os_str(), "--json".as_ref()]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ram = &r["memory"]["ram"];
    // Width 2 is not whole Q8_0 blocks: no Q8_0 cache, the device plan falls back to F16.
    assert!(ram["run_state_bytes"]["q8_0"].is_null());
    let blob = std::fs::read(&model).unwrap();
    let g = mote_core::gguf::Gguf::parse(&blob).unwrap();
    let hp = mote_core::model::HParams::from_gguf(&g).unwrap();
    use mote_core::state::{KvType, RunState};
    assert_eq!(ram["run_state_bytes"]["f16"], RunState::bytes_needed(&hp, KvType::F16));
    assert_eq!(ram["run_state_bytes"]["f32"], RunState::bytes_needed(&hp, KvType::F32));
    assert_eq!(ram["device"]["kv"], "f16");
    assert_eq!(ram["n_ctx"], 1024);
}

#[test]
fn board_check_reports_margins_and_fails_when_the_model_does_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted_fake_gpt2(tmp.path());
    // 50,257 tokens of vocabulary and index, and as many logits: far more than netduinoplus2's
    // 128 KiB of RAM holds, well within the 4 MB of mps2-an386.
    let r = mote_json(&["inspect", model.to_str().unwrap(), "--json", "--board", "mps2-an386"]);
    let size = std::fs::metadata(&model).unwrap().len() as i64;
    assert_eq!(r["board"]["fits"], true);
    let boards = mote_boards::Boards::load(&repo_root().join("boards.toml")).unwrap();
    let code = boards.budgets.code_flash as i64;
    assert_eq!(r["board"]["flash_margin"], (4 << 20) - size - code);
    assert_eq!(r["board"]["math"], "float", "boards.toml's default");

    let o = mote(&[
        "inspect".as_ref(),
        model.as_os_str(),
        "--board".as_ref(),
        "netduinoplus2".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("does not fit board netduinoplus2"), "{err}");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("does NOT fit"), "{text}");

    // mps3-an547 keeps the model in its QSPI flash: the code alone goes in its 512 KB ITCM.
    let r = mote_json(&["inspect", model.to_str().unwrap(), "--json", "--board", "mps3-an547"]);
    assert_eq!(r["board"]["model_region_bytes"], 8 << 20);
    assert_eq!(r["board"]["flash_margin"], ((512 << 10) - code).min((8 << 20) - size));
}

#[test]
fn boards_table_shows_every_bundled_model_on_every_board_as_board_does() {
    // Without a model, every bundled model; each row as `--board` plans it. The small model is
    // the one for 512 KiB of flash (the STM32F411); the default needs more, and mps3-an547 holds it
    // in its QSPI region beside the 512 KiB ITCM.
    let r = mote_json(&["inspect", "--boards", "--json"]);
    let boards = mote_boards::Boards::load(&repo_root().join("boards.toml")).unwrap();
    let models = r["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert_eq!(names, ["tinystories-base", "tinystories-small"]);
    for m in models {
        let rows = m["boards"].as_array().unwrap();
        assert_eq!(rows.len(), boards.boards.len());
        for row in rows {
            let board = row["board"].as_str().unwrap();
            let one = mote(&["inspect", m["model"].as_str().unwrap(), "--board", board, "--json"]);
            let one: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
            for key in ["fits", "flash_margin", "ram_margin"] {
                assert_eq!(row[key], one["board"][key], "{} on {board}: {key}", m["model"]);
            }
        }
    }
    let fits = |model: usize, board: &str| {
        let rows = models[model]["boards"].as_array().unwrap();
        rows.iter().find(|b| b["board"] == board).unwrap()["fits"] == true
    };
    assert_eq!(boards.get("mps3-an547").unwrap().flash.size, 512 * 1024);
    assert!(fits(0, "mps3-an547") && fits(1, "mps3-an547"));
    assert_eq!(boards.get("blackpill-f411").unwrap().flash.size, 512 * 1024);
    assert!(!fits(0, "blackpill-f411") && fits(1, "blackpill-f411"));
    assert!(fits(0, "netduinoplus2") && fits(1, "netduinoplus2"));

    // One model by name, as text.
    let o = mote(&["inspect", "tinystories-small", "--boards"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("tinystories-small: flash "), "{text}");
    assert!(text.lines().any(|l| l.split_whitespace().take(2).eq(["mps3-an547", "yes"])), "{text}");
}

#[test]
fn board_plan_shows_the_boards_arithmetic() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted_fake_gpt2(tmp.path());
    // mps2-an385 runs v6-M code with no FPU: boards.toml gives it integer math.
    let args = ["inspect".as_ref(), model.as_os_str(), "--board".as_ref(), "mps2-an385".as_ref()];
    let o = mote(&args);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("board mps2-an385 (integer math)"), "{text}");
    let r = mote_json(&["inspect", model.to_str().unwrap(), "--json", "--board", "mps2-an385"]);
    assert_eq!(r["board"]["math"], "integer");
}

#[test]
fn unknown_board_lists_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted_fake_gpt2(tmp.path());
    let o = mote(&["inspect".as_ref(), model.as_os_str(), "--board".as_ref(), "esp32".as_ref()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("unknown board \"esp32\"") && err.contains("nrf52840-dk"), "{err}");
}

/// A small GPT-2 GGUF of Q4_0 matrices, written by gguf-py through tools/py/make_unsupported_gguf.py.
fn q4_0_model(dir: &Path) -> PathBuf {
    let out = dir.join("q4_0.gguf");
    mote_tests::python_script(
        "make_unsupported_gguf.py",
        &[out.as_os_str(), "--type".as_ref(), "Q4_0".as_ref()],
    );
    out
}

#[test]
fn shows_a_file_of_types_mote_cannot_run_and_says_how_to_get_q8_0() {
    let tmp = tempfile::tempdir().unwrap();
    let model = q4_0_model(tmp.path());
    let o = mote(&["inspect".as_ref(), model.as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("tokenizer.ggml.tokens"), "metadata is shown:\n{text}");
    assert!(text.contains("blk.0.ffn_up.weight") && text.contains("Q4_0"), "tensors:\n{text}");
    assert!(text.contains("mote cannot run this file: it holds Q4_0 tensors"), "{text}");
    assert!(text.contains("--type q8_0") && text.contains("llama-quantize"), "{text}");

    let r = mote_json(&["inspect".as_ref(), model.as_os_str(), "--json".as_ref()]);
    assert_eq!(r["runnable"]["ok"], false);
    assert_eq!(r["runnable"]["unsupported_types"], serde_json::json!(["Q4_0"]));
    assert_eq!(r["totals"]["tensors"], 16);
}

#[test]
fn generate_eval_and_bench_refuse_types_mote_cannot_run_with_the_same_advice() {
    let tmp = tempfile::tempdir().unwrap();
    let model = q4_0_model(tmp.path());
    let text = tmp.path().join("text.txt");
    std::fs::write(&text, "t1 t0 t1 t0 t1").unwrap();
    let m = model.to_str().unwrap();
    for args in [
        vec!["generate", "--model", m, "--prompt", "t1"],
        vec!["eval", "--model", m, "--text", text.to_str().unwrap()],
        vec!["bench", "--model", m],
    ] {
        let o = mote(&args);
        assert!(!o.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line:\n{err}");
        assert!(err.contains("Q4_0") && err.contains("--type q8_0"), "{args:?}: {err}");
        assert!(err.contains("llama-quantize"), "{args:?}: {err}");
    }
}

#[test]
fn board_plan_with_beams_says_how_many_fit() {
    // The bundled model on the nRF52840 (256 KiB of RAM): three beams fit, four do not.
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tinystories-base/tinystories-base-q8_0.gguf");
    let m = model.to_str().unwrap();
    let board =
        |beams: &str| mote(&["inspect", m, "--board", "nrf52840-dk", "--beams", beams, "--json"]);
    let (one, three, four) = (board("1"), board("3"), board("4"));
    assert!(one.status.success() && three.status.success());
    let j = |o: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (j1, j3, j4) = (j(&one), j(&three), j(&four));
    let per = j1["memory"]["ram"]["bytes_per_beam"].as_i64().unwrap();
    assert_eq!(j3["board"]["beams"], 3);
    let margin = |j: &serde_json::Value| j["board"]["ram_margin"].as_i64().unwrap();
    assert_eq!(margin(&j3) - margin(&j4), per);
    assert!(margin(&j3) >= 0 && margin(&j4) < 0);
    assert!(!four.status.success());
    let err = String::from_utf8_lossy(&four.stderr);
    assert!(err.contains("with 4 beams does not fit board nrf52840-dk"), "{err}");
    let zero = mote(&["inspect", m, "--board", "nrf52840-dk", "--beams", "0"]);
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--beams 0"));
}

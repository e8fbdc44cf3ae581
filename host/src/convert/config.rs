//! `config.json` of a Hugging Face GPT-2 checkpoint: the hyper-parameters the converter needs, checked.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// GPT-2 hyper-parameters read from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct HfConfig {
    /// Width of the residual stream (`n_embd`).
    pub n_embd: u64,
    /// Attention heads (`n_head`).
    pub n_head: u64,
    /// Transformer blocks (`n_layer`).
    pub n_layer: u64,
    /// Rows of the position embedding (`n_positions`).
    pub n_positions: u64,
    /// Context length written to GGUF: `n_ctx`, or `n_positions` when absent (newer configs).
    pub n_ctx: u64,
    /// Vocabulary size: rows of the token embedding (`vocab_size`).
    pub vocab_size: u64,
    /// MLP width: `n_inner` when set, else 4 x `n_embd` (what llama.cpp writes).
    pub n_ff: u64,
    /// `layer_norm_epsilon`.
    pub layer_norm_epsilon: f32,
    /// `bos_token_id`, if present.
    pub bos_token_id: Option<u64>,
    /// `eos_token_id`, if present.
    pub eos_token_id: Option<u64>,
    /// `activation_function`.
    pub activation: String,
}

/// The activations mote and llama.cpp compute for GPT-2: GELU with the tanh approximation.
const TANH_GELUS: &[&str] = &["gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

/// The largest dimension a config may give: GGUF stores GPT-2's hyper-parameters as u32 (and the
/// converter computes `3 * n_embd` and `4 * n_embd` in u64, which this bound keeps from overflowing).
const MAX_DIM: u64 = u32::MAX as u64;

/// Reads and checks `dir/config.json`.
pub fn load(dir: &Path) -> Result<HfConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: a Hugging Face checkpoint directory needs its config.json",
            path.display()
        )
    })?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    parse(&v).with_context(|| format!("in {}", path.display()))
}

/// Reads and checks the bytes of a `config.json`.
pub fn from_json(bytes: &[u8]) -> Result<HfConfig> {
    let v: Value = serde_json::from_slice(bytes).context("config.json is not valid JSON")?;
    parse(&v)
}

/// Checks a parsed `config.json`.
pub fn parse(v: &Value) -> Result<HfConfig> {
    match v.get("model_type").and_then(Value::as_str) {
        Some("gpt2") => {}
        Some(other) => {
            bail!("config.json has model_type {other:?}; mote converts GPT-2 checkpoints only")
        }
        None => bail!(
            "config.json has no model_type; mote converts GPT-2 checkpoints (model_type \"gpt2\")"
        ),
    }
    let uint = |key: &str| -> Result<Option<u64>> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => match x.as_u64() {
                Some(n) => Ok(Some(n)),
                None => bail!("config.json field {key} is {x}, expected a non-negative integer"),
            },
        }
    };
    let required = |key: &str| -> Result<u64> {
        match uint(key)? {
            Some(0) => bail!("config.json field {key} is 0"),
            Some(n) if n > MAX_DIM => bail!(
                "config.json field {key} is {n}, more than GGUF's u32 hyper-parameters hold ({MAX_DIM})"
            ),
            Some(n) => Ok(n),
            None => bail!("config.json has no {key}; it is needed for a GPT-2 model"),
        }
    };
    let n_embd = required("n_embd")?;
    let n_head = required("n_head")?;
    let n_layer = required("n_layer")?;
    let n_positions = required("n_positions")?;
    let vocab_size = required("vocab_size")?;
    if n_embd % n_head != 0 {
        bail!("config.json: n_embd {n_embd} is not a multiple of n_head {n_head}");
    }
    let n_ctx = match uint("n_ctx")? {
        Some(0) => bail!("config.json field n_ctx is 0"),
        Some(n) if n > MAX_DIM => bail!(
            "config.json field n_ctx is {n}, more than GGUF's u32 hyper-parameters hold ({MAX_DIM})"
        ),
        Some(n) => n,
        None => n_positions,
    };
    if n_ctx > n_positions {
        bail!(
            "config.json: n_ctx {n_ctx} is larger than n_positions {n_positions}, the rows of the \
             position embedding; a model cannot attend past them"
        );
    }
    let n_ff = match uint("n_inner")? {
        Some(0) => bail!("config.json field n_inner is 0"),
        Some(n) => n,
        None => 4 * n_embd,
    };
    if n_ff > MAX_DIM {
        bail!("config.json: the MLP width {n_ff} is more than GGUF's u32 hyper-parameters hold ({MAX_DIM})");
    }
    let layer_norm_epsilon = match v.get("layer_norm_epsilon") {
        None | Some(Value::Null) => 1e-5,
        Some(x) => match x.as_f64() {
            Some(e) if e > 0.0 && e.is_finite() => e as f32,
            _ => bail!("config.json field layer_norm_epsilon is {x}, expected a positive number"),
        },
    };
    let activation = match v.get("activation_function") {
        None | Some(Value::Null) => "gelu_new".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(x) => bail!("config.json field activation_function is {x}, expected a string"),
    };
    if !TANH_GELUS.contains(&activation.as_str()) && activation != "gelu" {
        bail!(
            "config.json has activation_function {activation:?}; mote (like llama.cpp) computes GPT-2's \
             tanh-approximated GELU (\"gelu_new\") only"
        );
    }
    Ok(HfConfig {
        n_embd,
        n_head,
        n_layer,
        n_positions,
        n_ctx,
        vocab_size,
        n_ff,
        layer_norm_epsilon,
        bos_token_id: uint("bos_token_id")?,
        eos_token_id: uint("eos_token_id")?,
        activation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "n_positions": 128,
               "vocab_size": 300, "layer_norm_epsilon": 1e-5, "n_inner": null,
               "activation_function": "gelu_new"})
    }

    #[test]
    fn defaults_context_to_n_positions_and_ff_to_four_times_width() {
        let c = parse(&base()).unwrap();
        assert_eq!((c.n_ctx, c.n_ff), (128, 256));
        let mut v = base();
        v["n_ctx"] = json!(64);
        v["n_inner"] = json!(100);
        let c = parse(&v).unwrap();
        assert_eq!((c.n_ctx, c.n_ff), (64, 100));
    }

    #[test]
    fn rejects_other_model_types_and_missing_fields() {
        let mut v = base();
        v["model_type"] = json!("llama");
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("\"llama\"") && e.contains("GPT-2"), "{e}");
        let mut v = base();
        v.as_object_mut().unwrap().remove("n_head");
        assert!(parse(&v).unwrap_err().to_string().contains("n_head"));
        let mut v = base();
        v["n_head"] = json!(5);
        assert!(parse(&v).is_err());
        let mut v = base();
        v["n_ctx"] = json!(129);
        assert!(parse(&v).unwrap_err().to_string().contains("n_positions 128"));
        let mut v = base();
        v["activation_function"] = json!("relu");
        assert!(parse(&v).unwrap_err().to_string().contains("relu"));
    }
}

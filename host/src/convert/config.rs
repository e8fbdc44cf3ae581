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
    /// `scale_attn_weights`: scores divided by sqrt(head_dim) (GPT-2's default).
    pub scale_attn_weights: bool,
    /// `scale_attn_by_inverse_layer_idx`: layer `i`'s scores also divided by `i + 1`.
    pub scale_attn_by_inverse_layer_idx: bool,
    /// `tie_word_embeddings`: the output head is `wte` (GPT-2's default) unless the file holds a
    /// different `lm_head.weight`; when false, the file must hold one.
    pub tie_word_embeddings: bool,
    /// One-line warnings for the user: fields mote does not know, and the exact GELU.
    pub warnings: Vec<String>,
}

impl HfConfig {
    /// The factor by which layer `layer`'s query (the first `n_embd` outputs of `c_attn`, weight
    /// and bias) is multiplied at conversion. mote and llama.cpp score attention as
    /// q.k / sqrt(head_dim); the checkpoint scores it as q.k, times 1/sqrt(head_dim) if
    /// `scale_attn_weights`, times 1/(layer + 1) if `scale_attn_by_inverse_layer_idx`. Scores are
    /// linear in q, so the difference is one constant per layer on q: 1 for plain GPT-2.
    pub fn query_scale(&self, layer: u64) -> f32 {
        let head_dim = (self.n_embd / self.n_head) as f64;
        let mut s = if self.scale_attn_weights { 1.0 } else { head_dim.sqrt() };
        if self.scale_attn_by_inverse_layer_idx {
            s /= (layer + 1) as f64;
        }
        s as f32
    }

    /// Whether any layer's query scale differs from 1 (plain GPT-2 has none).
    pub fn folds_query_scale(&self) -> bool {
        !self.scale_attn_weights || self.scale_attn_by_inverse_layer_idx
    }
}

/// The activations mote and llama.cpp compute for GPT-2: GELU with the tanh approximation.
const TANH_GELUS: &[&str] =
    &["gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_fast", "gelu_accurate"];

/// The exact (erf) GELU, which a GGUF cannot ask for: mote and llama.cpp compute the tanh
/// approximation instead, and the converter says how far apart the two are (figures and the
/// commands that measured them: docs/convert.md).
const EXACT_GELUS: &[&str] = &["gelu", "gelu_python"];

/// The warning for an exact-GELU checkpoint, after its activation's name.
const EXACT_GELU_WARNING: &str = "the exact (erf) GELU; mote, like llama.cpp, computes the \
    tanh approximation, which differs from it by at most 4.7e-4 per activation and moved the \
    logits of a random test checkpoint by up to 2.0e-3: expect logits that differ slightly from \
    transformers'";

/// What the converter does with one `config.json` field.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// Read by [`parse`]: written to the GGUF or used to check and pick the weights.
    Honoured,
    /// Folded into the weights at conversion (the attention scale, into the query weights).
    Folded,
    /// Cannot change GPT2LMHeadModel's logits, for the reason given.
    Ignored(&'static str),
    /// Refused unless `allowed(value)`, a value that changes nothing; the reason says what mote
    /// lacks.
    Refused(fn(&Value) -> bool, &'static str),
}

fn is_false(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.values().all(|heads| heads.as_array().is_some_and(Vec::is_empty)),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn is_null(v: &Value) -> bool {
    v.is_null()
}

const DROPOUT: Rule = Rule::Ignored("dropout is off at inference");
const GENERATION: Rule =
    Rule::Ignored("a generation default for transformers' generate(), not part of the model");
const OTHER_HEAD: Rule =
    Rule::Ignored("configures a head other than lm_head (classification, multiple choice)");
const OUTPUTS: Rule = Rule::Ignored("chooses which extra outputs transformers returns");
const PROVENANCE: Rule = Rule::Ignored("records where and how the checkpoint was made");
const ENCODER_DECODER: Rule =
    Rule::Ignored("only used when GPT-2 is the decoder of an encoder-decoder");
const DTYPE: Rule = Rule::Ignored("each weight's dtype is read from model.safetensors");
const KERNEL: Rule =
    Rule::Ignored("picks an attention kernel; every kernel computes the same scores");
const OPENAI_GPT: Rule =
    Rule::Ignored("OpenAI GPT's field, copied into early GPT-2 configs; GPT-2 does not read it");

/// Every field of transformers 5.24's `GPT2Config`, and every `PretrainedConfig` field found in
/// GPT-2 `config.json` files (including the ones older transformers versions wrote), with what the
/// converter does with it. A field not in this table gets a warning naming it.
pub const FIELDS: &[(&str, Rule)] = &[
    // GPT2Config.
    ("vocab_size", Rule::Honoured),
    ("n_positions", Rule::Honoured),
    ("n_ctx", Rule::Honoured),
    ("n_embd", Rule::Honoured),
    ("n_layer", Rule::Honoured),
    ("n_head", Rule::Honoured),
    ("n_inner", Rule::Honoured),
    ("activation_function", Rule::Honoured),
    ("resid_pdrop", DROPOUT),
    ("embd_pdrop", DROPOUT),
    ("attn_pdrop", DROPOUT),
    ("layer_norm_epsilon", Rule::Honoured),
    ("initializer_range", Rule::Ignored("sets the random initial weights; these are in the file")),
    ("summary_type", OTHER_HEAD),
    ("summary_use_proj", OTHER_HEAD),
    ("summary_activation", OTHER_HEAD),
    ("summary_proj_to_labels", OTHER_HEAD),
    ("summary_first_dropout", OTHER_HEAD),
    ("scale_attn_weights", Rule::Folded),
    ("use_cache", Rule::Ignored("the KV cache changes speed, not the logits")),
    ("bos_token_id", Rule::Honoured),
    ("eos_token_id", Rule::Honoured),
    ("pad_token_id", Rule::Ignored("padding of batched inputs; mote runs one sequence")),
    ("scale_attn_by_inverse_layer_idx", Rule::Folded),
    ("reorder_and_upcast_attn", Rule::Ignored(
        "computes attention scores in f32 to avoid f16 overflow; mote always computes them in f32",
    )),
    ("add_cross_attention", Rule::Refused(
        is_false,
        "cross-attention reads an encoder's output; mote runs GPT-2 as a decoder on its own",
    )),
    ("tie_word_embeddings", Rule::Honoured),
    // PretrainedConfig fields that GPT-2 config.json files carry.
    ("model_type", Rule::Honoured),
    ("architectures", Rule::Ignored(
        "the tensors decide: a head other than lm_head is refused as an unexpected tensor",
    )),
    ("transformers_version", PROVENANCE),
    ("_name_or_path", PROVENANCE),
    ("name_or_path", PROVENANCE),
    ("_commit_hash", PROVENANCE),
    ("torch_dtype", DTYPE),
    ("dtype", DTYPE),
    ("use_bfloat16", DTYPE),
    ("gradient_checkpointing", Rule::Ignored("saves memory in training only")),
    ("chunk_size_feed_forward", Rule::Ignored("splits the MLP in chunks to save memory")),
    ("attn_implementation", KERNEL),
    ("_attn_implementation", KERNEL),
    ("experts_implementation", Rule::Ignored("picks a mixture-of-experts kernel; GPT-2 has none")),
    ("per_layer_config", Rule::Refused(
        is_null,
        "gives layers different hyper-parameters; mote runs the same block in every layer",
    )),
    // transformers reads these as aliases that override GPT-2's own names.
    ("hidden_size", Rule::Refused(is_null, "transformers reads it as n_embd; rename it n_embd")),
    ("max_position_embeddings", Rule::Refused(
        is_null,
        "transformers reads it as n_positions; rename it n_positions",
    )),
    ("num_attention_heads", Rule::Refused(is_null, "transformers reads it as n_head; rename it")),
    ("num_hidden_layers", Rule::Refused(is_null, "transformers reads it as n_layer; rename it")),
    ("pruned_heads", Rule::Refused(
        is_empty,
        "pruned heads leave layers with different head counts; mote runs all heads in every layer",
    )),
    ("quantization_config", Rule::Refused(
        is_null,
        "the weights are quantized by another tool; convert the unquantized checkpoint",
    )),
    ("is_encoder_decoder", Rule::Refused(
        is_false,
        "mote runs a decoder-only GPT-2, not an encoder-decoder",
    )),
    ("is_decoder", ENCODER_DECODER),
    ("cross_attention_hidden_size", ENCODER_DECODER),
    ("tie_encoder_decoder", ENCODER_DECODER),
    ("decoder_start_token_id", ENCODER_DECODER),
    ("sep_token_id", Rule::Ignored("a tokenizer's special token; the model does not read it")),
    ("tokenizer_class", Rule::Ignored("a tokenizer class name; the tokenizer is read from files")),
    ("prefix", GENERATION),
    ("task_specific_params", GENERATION),
    ("max_length", GENERATION),
    ("min_length", GENERATION),
    ("do_sample", GENERATION),
    ("early_stopping", GENERATION),
    ("num_beams", GENERATION),
    ("num_beam_groups", GENERATION),
    ("diversity_penalty", GENERATION),
    ("temperature", GENERATION),
    ("top_k", GENERATION),
    ("top_p", GENERATION),
    ("typical_p", GENERATION),
    ("repetition_penalty", GENERATION),
    ("length_penalty", GENERATION),
    ("no_repeat_ngram_size", GENERATION),
    ("encoder_no_repeat_ngram_size", GENERATION),
    ("bad_words_ids", GENERATION),
    ("num_return_sequences", GENERATION),
    ("output_scores", GENERATION),
    ("return_dict_in_generate", GENERATION),
    ("forced_bos_token_id", GENERATION),
    ("forced_eos_token_id", GENERATION),
    ("remove_invalid_values", GENERATION),
    ("exponential_decay_length_penalty", GENERATION),
    ("suppress_tokens", GENERATION),
    ("begin_suppress_tokens", GENERATION),
    ("encoder_repetition_penalty", GENERATION),
    ("epsilon_cutoff", GENERATION),
    ("eta_cutoff", GENERATION),
    ("assistant_confidence_threshold", GENERATION),
    ("assistant_lookbehind", GENERATION),
    ("num_assistant_tokens", GENERATION),
    ("num_assistant_tokens_schedule", GENERATION),
    ("target_lookbehind", GENERATION),
    ("id2label", OTHER_HEAD),
    ("label2id", OTHER_HEAD),
    ("num_labels", OTHER_HEAD),
    ("_num_labels", OTHER_HEAD),
    ("problem_type", OTHER_HEAD),
    ("finetuning_task", OTHER_HEAD),
    ("output_attentions", OUTPUTS),
    ("output_hidden_states", OUTPUTS),
    ("return_dict", OUTPUTS),
    ("torchscript", Rule::Ignored("prepares TorchScript export; same weights and math")),
    ("n_special", OPENAI_GPT),
    ("predict_special_tokens", OPENAI_GPT),
];

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
    let Some(fields) = v.as_object() else { bail!("config.json is not a JSON object") };
    let mut unknown = Vec::new();
    for (key, value) in fields {
        match FIELDS.iter().find(|(name, _)| name == key) {
            Some((_, Rule::Refused(allowed, why))) if !allowed(value) => {
                bail!("config.json has {key}: {value}; {why}")
            }
            Some(_) => {}
            None => unknown.push(key.as_str()),
        }
    }
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        warnings.push(format!(
            "config.json has fields mote does not know: {}; they are ignored, so if one changes \
             the model the converted file computes something else",
            unknown.join(", ")
        ));
    }
    let flag = |key: &str, default: bool| -> Result<bool> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(x) => bail!("config.json field {key} is {x}, expected true or false"),
        }
    };
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
    if EXACT_GELUS.contains(&activation.as_str()) {
        warnings.push(format!(
            "config.json has activation_function {activation:?}, {EXACT_GELU_WARNING}"
        ));
    } else if !TANH_GELUS.contains(&activation.as_str()) {
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
        eos_token_id: match v.get("eos_token_id") {
            // transformers allows several end tokens; GGUF holds one, the first.
            Some(Value::Array(ids)) => match ids.first() {
                None => None,
                Some(id) => Some(id.as_u64().with_context(|| {
                    format!("config.json field eos_token_id holds {id}, expected a token id")
                })?),
            },
            _ => uint("eos_token_id")?,
        },
        activation,
        scale_attn_weights: flag("scale_attn_weights", true)?,
        scale_attn_by_inverse_layer_idx: flag("scale_attn_by_inverse_layer_idx", false)?,
        tie_word_embeddings: flag("tie_word_embeddings", true)?,
        warnings,
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

    /// The keys of transformers 5.24's `GPT2Config().to_dict()`, which `save_pretrained` writes.
    const TRANSFORMERS_5_24_KEYS: &[&str] = &[
        "_name_or_path",
        "activation_function",
        "add_cross_attention",
        "architectures",
        "attn_pdrop",
        "bos_token_id",
        "chunk_size_feed_forward",
        "dtype",
        "embd_pdrop",
        "eos_token_id",
        "id2label",
        "initializer_range",
        "is_encoder_decoder",
        "label2id",
        "layer_norm_epsilon",
        "model_type",
        "n_embd",
        "n_head",
        "n_inner",
        "n_layer",
        "n_positions",
        "output_attentions",
        "output_hidden_states",
        "pad_token_id",
        "problem_type",
        "reorder_and_upcast_attn",
        "resid_pdrop",
        "return_dict",
        "scale_attn_by_inverse_layer_idx",
        "scale_attn_weights",
        "summary_activation",
        "summary_first_dropout",
        "summary_proj_to_labels",
        "summary_type",
        "summary_use_proj",
        "tie_word_embeddings",
        "transformers_version",
        "use_cache",
        "vocab_size",
    ];

    #[test]
    fn every_field_transformers_writes_is_in_the_table_once() {
        for key in TRANSFORMERS_5_24_KEYS {
            assert!(FIELDS.iter().any(|(name, _)| name == key), "{key} is not in FIELDS");
        }
        for (i, (name, _)) in FIELDS.iter().enumerate() {
            assert!(!FIELDS[..i].iter().any(|(n, _)| n == name), "{name} is in FIELDS twice");
        }
    }

    #[test]
    fn query_scale_is_one_for_gpt2_and_undoes_each_flag() {
        // head_dim = 64 / 4 = 16.
        let c = parse(&base()).unwrap();
        assert!(!c.folds_query_scale());
        assert_eq!((c.query_scale(0), c.query_scale(1)), (1.0, 1.0));
        let mut v = base();
        v["scale_attn_by_inverse_layer_idx"] = json!(true);
        let c = parse(&v).unwrap();
        assert_eq!((c.query_scale(0), c.query_scale(1), c.query_scale(3)), (1.0, 0.5, 0.25));
        v["scale_attn_weights"] = json!(false);
        let c = parse(&v).unwrap();
        assert_eq!((c.query_scale(0), c.query_scale(1), c.query_scale(3)), (4.0, 2.0, 1.0));
        v["scale_attn_weights"] = json!("no");
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("scale_attn_weights is \"no\", expected true or false"), "{e}");
    }

    #[test]
    fn refuses_fields_that_change_the_model_naming_them() {
        for (key, value) in [
            ("add_cross_attention", json!(true)),
            ("is_encoder_decoder", json!(true)),
            ("pruned_heads", json!({"0": [1, 2]})),
            ("hidden_size", json!(64)),
            ("quantization_config", json!({"quant_method": "gptq"})),
        ] {
            let mut v = base();
            v[key] = value.clone();
            let e = parse(&v).unwrap_err().to_string();
            assert!(e.starts_with(&format!("config.json has {key}: {value}; ")), "{e}");
        }
        // The same fields with values that change nothing.
        let mut v = base();
        v["add_cross_attention"] = json!(false);
        v["pruned_heads"] = json!({});
        v["quantization_config"] = Value::Null;
        assert!(parse(&v).unwrap().warnings.is_empty());
    }

    #[test]
    fn warns_about_unknown_fields_and_the_exact_gelu() {
        let mut v = base();
        v["my_flag"] = json!(1);
        v["other_flag"] = json!(false);
        v["dropout"] = json!(0.1);
        let w = parse(&v).unwrap().warnings;
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("does not know: dropout, my_flag, other_flag;"), "{w:?}");
        let mut v = base();
        v["activation_function"] = json!("gelu");
        let w = parse(&v).unwrap().warnings;
        assert!(w.len() == 1 && w[0].contains("\"gelu\", the exact (erf) GELU"), "{w:?}");
    }

    #[test]
    fn takes_the_first_of_several_eos_ids() {
        let mut v = base();
        v["eos_token_id"] = json!([7, 9]);
        assert_eq!(parse(&v).unwrap().eos_token_id, Some(7));
        v["eos_token_id"] = json!(["x"]);
        assert!(parse(&v).unwrap_err().to_string().contains("eos_token_id holds \"x\""));
    }
}

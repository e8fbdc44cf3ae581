//! Synthetic GPT-2 GGUF files for the unit tests of this crate (the real writer lives in the host),
//! and the few lines every forward-pass test starts with.

use crate::quant::{quantize_block_q8_0, QK8_0};

/// A metadata value the builder can write.
pub enum Meta {
    U32(u32),
    F32(f32),
    Str(&'static str),
    Strs(Vec<String>),
}

/// One tensor: name, GGUF dims, ggml type number, data.
pub struct Tensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: u32,
    pub data: Vec<u8>,
}

/// A model description, edited by tests before `build`.
pub struct Spec {
    pub meta: Vec<(String, Meta)>,
    pub tensors: Vec<Tensor>,
}

/// Deterministic pseudo-random values in [-scale, scale).
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn encode(v: &[f32], ty: u32, n_in: usize) -> Vec<u8> {
    match ty {
        0 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        1 => v.iter().flat_map(|&x| crate::quant::f32_to_f16_bits(x).to_le_bytes()).collect(),
        _ => {
            assert_eq!(n_in % QK8_0, 0);
            v.chunks_exact(QK8_0)
                .flat_map(|c| quantize_block_q8_0(c.try_into().unwrap()).to_bytes())
                .collect()
        }
    }
}

impl Spec {
    /// A GPT-2 with `V = 40, T = 8, C = 32, NH = 2, L = 2, F = 64`, matrices of ggml type
    /// `ty` (0 F32, 1 F16, 8 Q8_0), vectors F32, tied output.
    pub fn gpt2(ty: u32) -> Self {
        let (v, t, c, nh, l, f) = (40usize, 8usize, 32usize, 2u32, 2usize, 64usize);
        let meta = vec![
            ("general.architecture".into(), Meta::Str("gpt2")),
            ("gpt2.context_length".into(), Meta::U32(t as u32)),
            ("gpt2.embedding_length".into(), Meta::U32(c as u32)),
            ("gpt2.feed_forward_length".into(), Meta::U32(f as u32)),
            ("gpt2.block_count".into(), Meta::U32(l as u32)),
            ("gpt2.attention.head_count".into(), Meta::U32(nh)),
            ("gpt2.attention.layer_norm_epsilon".into(), Meta::F32(1e-5)),
            ("tokenizer.ggml.tokens".into(), Meta::Strs((0..v).map(|i| format!("t{i}")).collect())),
            ("tokenizer.ggml.eos_token_id".into(), Meta::U32(v as u32 - 1)),
        ];
        let mut spec = Spec { meta, tensors: Vec::new() };
        let mut seed = 1;
        let mut mat = |spec: &mut Spec, name: String, n_in: usize, n_out: usize, scale: f32| {
            seed += 1;
            let data = encode(&values(seed, n_in * n_out, scale), ty, n_in);
            spec.tensors.push(Tensor { name, dims: vec![n_in as u64, n_out as u64], ty, data });
        };
        mat(&mut spec, "token_embd.weight".into(), c, v, 1.0);
        mat(&mut spec, "position_embd.weight".into(), c, t, 0.5);
        for i in 0..l {
            mat(&mut spec, format!("blk.{i}.attn_qkv.weight"), c, 3 * c, 0.3);
            mat(&mut spec, format!("blk.{i}.attn_output.weight"), c, c, 0.3);
            mat(&mut spec, format!("blk.{i}.ffn_up.weight"), c, f, 0.3);
            mat(&mut spec, format!("blk.{i}.ffn_down.weight"), f, c, 0.3);
        }
        let mut seed = 100;
        let mut vec = |spec: &mut Spec, name: String, n: usize, base: f32| {
            seed += 1;
            let v: Vec<f32> = values(seed, n, 0.1).iter().map(|x| x + base).collect();
            spec.tensors.push(Tensor { name, dims: vec![n as u64], ty: 0, data: encode(&v, 0, n) });
        };
        for i in 0..l {
            vec(&mut spec, format!("blk.{i}.attn_norm.weight"), c, 1.0);
            vec(&mut spec, format!("blk.{i}.attn_norm.bias"), c, 0.0);
            vec(&mut spec, format!("blk.{i}.attn_qkv.bias"), 3 * c, 0.0);
            vec(&mut spec, format!("blk.{i}.attn_output.bias"), c, 0.0);
            vec(&mut spec, format!("blk.{i}.ffn_norm.weight"), c, 1.0);
            vec(&mut spec, format!("blk.{i}.ffn_norm.bias"), c, 0.0);
            vec(&mut spec, format!("blk.{i}.ffn_up.bias"), f, 0.0);
            vec(&mut spec, format!("blk.{i}.ffn_down.bias"), c, 0.0);
        }
        vec(&mut spec, "output_norm.weight".into(), c, 1.0);
        vec(&mut spec, "output_norm.bias".into(), c, 0.0);
        spec
    }

    /// Removes a tensor.
    pub fn without(mut self, name: &str) -> Self {
        self.tensors.retain(|t| t.name != name);
        self
    }

    /// The tensor called `name`.
    pub fn tensor(&mut self, name: &str) -> &mut Tensor {
        self.tensors.iter_mut().find(|t| t.name == name).unwrap()
    }

    /// Sets (or adds) a metadata value.
    pub fn set(mut self, key: &str, value: Meta) -> Self {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.into(), value));
        self
    }

    /// The GGUF v3 bytes (alignment 32).
    pub fn build(&self) -> Vec<u8> {
        let mut b = Vec::new();
        let str_ = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.meta.len() as u64).to_le_bytes());
        for (k, v) in &self.meta {
            str_(&mut b, k);
            match v {
                Meta::U32(x) => {
                    b.extend_from_slice(&4u32.to_le_bytes());
                    b.extend_from_slice(&x.to_le_bytes());
                }
                Meta::F32(x) => {
                    b.extend_from_slice(&6u32.to_le_bytes());
                    b.extend_from_slice(&x.to_le_bytes());
                }
                Meta::Str(s) => {
                    b.extend_from_slice(&8u32.to_le_bytes());
                    str_(&mut b, s);
                }
                Meta::Strs(v) => {
                    b.extend_from_slice(&9u32.to_le_bytes());
                    b.extend_from_slice(&8u32.to_le_bytes());
                    b.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    for s in v {
                        str_(&mut b, s);
                    }
                }
            }
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            str_(&mut b, &t.name);
            b.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(&t.ty.to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            offset += (t.data.len() as u64).div_ceil(32) * 32;
        }
        for t in &self.tensors {
            while b.len() % 32 != 0 {
                b.push(0);
            }
            b.extend_from_slice(&t.data);
        }
        b
    }
}

/// The model in `blob`, which must be well formed.
pub fn load(blob: &[u8]) -> crate::model::Model<'_> {
    // A test's model lives as long as the test; its few hundred bytes of views may too.
    let layers = Box::leak(Box::new([crate::model::Layer::EMPTY; crate::model::MAX_LAYERS]));
    crate::model::Model::load(&crate::gguf::Gguf::parse(blob).unwrap(), layers).unwrap()
}

/// Hyper-parameters for run state and attention tests: `V = 10, T = 4, C = n_embd, NH = 2, L = 2,
/// F = 4C`.
pub fn small_hparams(n_embd: usize) -> crate::model::HParams {
    crate::model::HParams {
        n_vocab: 10,
        n_ctx: 4,
        n_embd,
        n_head: 2,
        n_layer: 2,
        n_ff: 4 * n_embd,
        eps: 1e-5,
        eos_token: None,
    }
}

/// The logits after each of `tokens`, fed one by one from position 0 by [`crate::forward::forward`]
/// into a fresh run state with a `kv` cache.
pub fn logits_by_steps(blob: &[u8], kv: crate::state::KvType, tokens: &[u32]) -> Vec<Vec<f32>> {
    use crate::state::RunState;
    let m = load(blob);
    let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
    let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
    let mut step = |(p, &t): (usize, &u32)| {
        crate::forward::forward(&m, &mut s, t, p, &crate::split::Serial, true).unwrap();
        s.logits().to_vec()
    };
    tokens.iter().enumerate().map(&mut step).collect()
}

/// A fixed xorshift64 generator: inputs that are varied, and the same on every run.
pub fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

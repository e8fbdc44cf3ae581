//! Batched prefill: the prompt's positions through the model as one batch, so that each matrix
//! is read once for up to `B` tokens (matrix-matrix work) instead of once per token.
//!
//! Letters: `B` batch (tokens per pass), `V` vocabulary, `C` width, `F` MLP width.
//!
//! Every value is computed by the same kernels, in the same order, as [`forward`] computes it one
//! position at a time: each (row, token) dot product is [`ops::matvec`]'s, layer norms, GELU and
//! residual additions run per token or element-wise, and attention runs position after position
//! through the run state's own code. So the KV cache and the logits are bit-identical to
//! token-by-token prefill.
//!
//! The batch buffers are not part of [`RunState`]: they live in a separate storage, sized by
//! [`Prefill::bytes_needed`], which only the desktop allocates. The device keeps the per-token
//! path and pays nothing for this.
//!
//! [`forward`]: crate::forward::forward
//! [`ops::matvec`]: crate::ops::matvec

use core::fmt;

use crate::forward::{check_step, ForwardError};
use crate::model::{HParams, Model};
use crate::ops::{add, gelu, layer_norm, matmul};
use crate::quant::{BlockQ8_0, Q8_0_BLOCK_BYTES, QK8_0};
use crate::split::RowSplit;
use crate::state::{RunState, ALIGN_SLACK};

/// Why a prefill scratch cannot be built in the storage given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefillError {
    /// A batch of zero tokens.
    ZeroBatch,
    /// The storage is smaller than [`Prefill::bytes_needed`].
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
}

impl fmt::Display for PrefillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroBatch => write!(f, "a prefill batch needs at least one token"),
            Self::TooSmall { needed, available } => {
                write!(f, "prefill scratch needs {needed} bytes of storage, only {available} given")
            }
        }
    }
}

impl core::error::Error for PrefillError {}

/// Sizes of the f32 buffers for a batch of `b`, in values, in storage order.
const fn f32_lens(hp: &HParams, b: usize) -> [usize; 6] {
    let c = hp.n_embd;
    [
        b.saturating_mul(c),                   // x
        b.saturating_mul(c),                   // xb
        b.saturating_mul(c),                   // xb2
        b.saturating_mul(c).saturating_mul(3), // qkv
        b.saturating_mul(hp.n_ff),             // hb
        b.saturating_mul(hp.n_vocab),          // logits
    ]
}

/// Q8_0 blocks for the batch's quantized matrix inputs, `(B, max(C, F) / 32)`.
const fn xq_blocks(hp: &HParams, b: usize) -> usize {
    let widest = if hp.n_ff > hp.n_embd { hp.n_ff } else { hp.n_embd };
    b.saturating_mul(widest / QK8_0)
}

/// Splits `n` values of `size` bytes off the front of `rest`.
fn take<'p>(rest: &mut &'p mut [u8], n: usize, size: usize) -> &'p mut [u8] {
    let all = core::mem::take(rest);
    let at = n.saturating_mul(size).min(all.len());
    let (head, tail) = all.split_at_mut(at);
    *rest = tail;
    head
}

/// The activations of a batch of up to `B` positions, in storage borrowed from the caller.
pub struct Prefill<'p> {
    /// The hyper-parameters the scratch was sized for.
    hparams: HParams,
    /// Positions per pass, `B`.
    batch: usize,
    /// Residual streams, `(B, C)`.
    x: &'p mut [f32],
    /// Layer norm outputs, then attention outputs, `(B, C)`.
    xb: &'p mut [f32],
    /// Projection outputs added to the residuals, `(B, C)`.
    xb2: &'p mut [f32],
    /// Queries, keys, values, `(B, 3C)`.
    qkv: &'p mut [f32],
    /// MLP hidden activations, `(B, F)`.
    hb: &'p mut [f32],
    /// Logits of every position, when asked for, `(B, V)`.
    logits: &'p mut [f32],
    /// Q8_0 copies of the matrix inputs, `(B, max(C, F) / 32)` blocks.
    xq: &'p mut [BlockQ8_0],
}

impl<'p> Prefill<'p> {
    /// Exact bytes of storage a scratch for batches of `batch` positions of `hp` needs, including
    /// [`ALIGN_SLACK`]. Saturates at `usize::MAX` rather than overflowing.
    pub const fn bytes_needed(hp: &HParams, batch: usize) -> usize {
        let lens = f32_lens(hp, batch);
        let mut f32s = 0usize;
        let mut i = 0;
        while i < lens.len() {
            f32s = f32s.saturating_add(lens[i]);
            i += 1;
        }
        ALIGN_SLACK
            .saturating_add(f32s.saturating_mul(4))
            .saturating_add(xq_blocks(hp, batch).saturating_mul(Q8_0_BLOCK_BYTES))
    }

    /// Carves a scratch for batches of `batch` positions of `hp` out of `storage`, which must
    /// hold at least [`Prefill::bytes_needed`] bytes.
    pub fn new(hp: &HParams, batch: usize, storage: &'p mut [u8]) -> Result<Self, PrefillError> {
        if batch == 0 {
            return Err(PrefillError::ZeroBatch);
        }
        let needed = Self::bytes_needed(hp, batch);
        if storage.len() < needed {
            return Err(PrefillError::TooSmall { needed, available: storage.len() });
        }
        let skip = storage.as_ptr().align_offset(core::mem::align_of::<f32>()).min(ALIGN_SLACK);
        let mut rest = &mut storage[skip..];
        let too_small = PrefillError::TooSmall { needed, available: 0 };
        let lens = f32_lens(hp, batch);
        let mut f32_buf = |n: usize| -> Result<&'p mut [f32], PrefillError> {
            bytemuck::try_cast_slice_mut(take(&mut rest, n, 4)).map_err(|_| too_small)
        };
        let x = f32_buf(lens[0])?;
        let xb = f32_buf(lens[1])?;
        let xb2 = f32_buf(lens[2])?;
        let qkv = f32_buf(lens[3])?;
        let hb = f32_buf(lens[4])?;
        let logits = f32_buf(lens[5])?;
        let xq =
            bytemuck::try_cast_slice_mut(take(&mut rest, xq_blocks(hp, batch), Q8_0_BLOCK_BYTES))
                .map_err(|_| too_small)?;
        Ok(Self { hparams: *hp, batch, x, xb, xb2, qkv, hb, logits, xq })
    }

    /// Positions per pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The hyper-parameters this scratch was sized for.
    pub fn hparams(&self) -> &HParams {
        &self.hparams
    }
}

/// Runs `tokens` at positions `pos..pos + tokens.len()` through every block, [`Prefill::batch`]
/// positions per pass, extending the KV cache: what [`forward_without_logits`] does for each in
/// turn, with the same bits in the cache. No logits are computed.
///
/// [`forward_without_logits`]: crate::forward::forward_without_logits
pub fn prefill(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    p: &mut Prefill<'_>,
    tokens: &[u32],
    pos: usize,
    split: &dyn RowSplit,
) -> Result<(), ForwardError> {
    prefill_with_logits(model, s, p, tokens, pos, split, None::<fn(usize, &[f32])>)
}

/// [`prefill`] that also computes every position's logits `(V)`, as [`forward`] does, and hands
/// them to `on_logits(i, logits)` for `tokens[i]`, in order. The run state's logits are the last
/// position's afterwards, as after [`forward`].
///
/// [`forward`]: crate::forward::forward
pub fn prefill_logits(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    p: &mut Prefill<'_>,
    tokens: &[u32],
    pos: usize,
    split: &dyn RowSplit,
    on_logits: impl FnMut(usize, &[f32]),
) -> Result<(), ForwardError> {
    prefill_with_logits(model, s, p, tokens, pos, split, Some(on_logits))
}

/// [`prefill`], with the output head when `on_logits` is given.
fn prefill_with_logits(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    p: &mut Prefill<'_>,
    tokens: &[u32],
    pos: usize,
    split: &dyn RowSplit,
    mut on_logits: Option<impl FnMut(usize, &[f32])>,
) -> Result<(), ForwardError> {
    if p.hparams != model.hparams {
        return Err(ForwardError::StateMismatch);
    }
    // Every position is checked before the cache changes.
    for (i, &t) in tokens.iter().enumerate() {
        check_step(model, s, t, pos.saturating_add(i))?;
    }
    let batch = p.batch.max(1);
    for (k, chunk) in tokens.chunks(batch).enumerate() {
        let at = pos + k * batch;
        batch_blocks(model, s, p, chunk, at, split);
        if let Some(f) = on_logits.as_mut() {
            batch_head(model, s, p, chunk.len(), split);
            let v = model.hparams.n_vocab;
            for (i, l) in p.logits.chunks_exact(v).take(chunk.len()).enumerate() {
                f(k * batch + i, l);
            }
        }
    }
    Ok(())
}

/// `x(i) = y(i)` over the common length.
fn copy(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a = b;
    }
}

/// The embeddings and every block for `tokens` (at most `B`, already checked) at positions
/// `pos..`: leaves their residual streams in `p.x`.
fn batch_blocks(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    p: &mut Prefill<'_>,
    tokens: &[u32],
    pos: usize,
    split: &dyn RowSplit,
) {
    let hp = model.hparams;
    let (n, c, f) = (tokens.len(), hp.n_embd, hp.n_ff);
    let (Some(x), Some(xb), Some(xb2), Some(qkv), Some(hb)) = (
        p.x.get_mut(..n * c),
        p.xb.get_mut(..n * c),
        p.xb2.get_mut(..n * c),
        p.qkv.get_mut(..n * 3 * c),
        p.hb.get_mut(..n * f),
    ) else {
        return;
    };
    let xq = &mut *p.xq;

    // x(t) = wte[token(t)] + wpe[pos + t]
    for (t, ((&tok, xt), xbt)) in
        tokens.iter().zip(x.chunks_exact_mut(c)).zip(xb.chunks_exact_mut(c)).enumerate()
    {
        model.wte.row_to_f32(xt, tok as usize);
        model.wpe.row_to_f32(xbt, pos + t);
        add(xt, xbt);
    }

    for (l, w) in model.layers().iter().enumerate() {
        // Attention: x += c_proj(attn(c_attn(ln_1(x)))), attention one position after another.
        for (xbt, xt) in xb.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            layer_norm(xbt, xt, w.ln_1.weight, w.ln_1.bias, hp.eps);
        }
        matmul(qkv, &w.c_attn.weight, Some(w.c_attn.bias), xb, xq, split);
        for (t, (qkvt, xbt)) in qkv.chunks_exact(3 * c).zip(xb.chunks_exact_mut(c)).enumerate() {
            copy(s.qkv, qkvt);
            s.store_kv(l, pos + t);
            s.attend(l, pos + t);
            copy(xbt, s.xb);
        }
        matmul(xb2, &w.attn_c_proj.weight, Some(w.attn_c_proj.bias), xb, xq, split);
        add(x, xb2);
        // MLP: x += c_proj(gelu(c_fc(ln_2(x))))
        for (xbt, xt) in xb.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            layer_norm(xbt, xt, w.ln_2.weight, w.ln_2.bias, hp.eps);
        }
        matmul(hb, &w.c_fc.weight, Some(w.c_fc.bias), xb, xq, split);
        gelu(hb);
        matmul(xb2, &w.mlp_c_proj.weight, Some(w.mlp_c_proj.bias), hb, xq, split);
        add(x, xb2);
    }
}

/// `logits(t) = lm_head(ln_f(x(t)))` for the first `n` positions of the batch; the last is also
/// copied to the run state's logits.
fn batch_head(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    p: &mut Prefill<'_>,
    n: usize,
    split: &dyn RowSplit,
) {
    let hp = model.hparams;
    let (c, v) = (hp.n_embd, hp.n_vocab);
    let (Some(x), Some(xb), Some(logits)) =
        (p.x.get(..n * c), p.xb.get_mut(..n * c), p.logits.get_mut(..n * v))
    else {
        return;
    };
    for (xbt, xt) in xb.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        layer_norm(xbt, xt, model.ln_f.weight, model.ln_f.bias, hp.eps);
    }
    matmul(logits, &model.lm_head, None, xb, p.xq, split);
    if let Some(last) = logits.chunks_exact(v).last() {
        copy(s.logits, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::{forward, forward_split, forward_without_logits};
    use crate::gguf::Gguf;
    use crate::model::test_model::Spec;
    use crate::split::Serial;
    use crate::state::KvType;

    const TOKENS: [u32; 7] = [3, 17, 0, 39, 8, 8, 21];

    /// A splitter that cuts every matrix's output, however small, into pieces of one grain and
    /// runs them in reverse order, to show that the result does not depend on how the rows are
    /// handed out.
    struct Pieces;

    impl RowSplit for Pieces {
        fn min_bytes(&self) -> usize {
            0
        }

        fn split(&self, out: &mut [f32], grain: usize, job: &(dyn Fn(usize, &mut [f32]) + Sync)) {
            let g = grain.max(1);
            let n = out.len().div_ceil(g);
            let mut pieces: Vec<(usize, &mut [f32])> =
                out.chunks_mut(g).enumerate().map(|(i, c)| (i * g, c)).collect();
            assert_eq!(pieces.len(), n);
            while let Some((start, piece)) = pieces.pop() {
                job(start, piece);
            }
        }
    }

    /// The run state's storage after `prompt` by per-token steps (head at the last position
    /// only) then one more step with `next`, and every logits vector of those two steps.
    fn by_steps(blob: &[u8], kv: KvType, prompt: &[u32], next: u32) -> (Vec<u8>, Vec<Vec<f32>>) {
        let g = Gguf::parse(blob).unwrap();
        let m = Model::load(&g).unwrap();
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let (last, head) = prompt.split_last().unwrap();
        for (p, &t) in head.iter().enumerate() {
            forward_without_logits(&m, &mut s, t, p).unwrap();
        }
        let a = forward(&m, &mut s, *last, head.len()).unwrap().to_vec();
        let b = forward(&m, &mut s, next, prompt.len()).unwrap().to_vec();
        (buf, vec![a, b])
    }

    /// The same with the prompt's head prefilled in batches of `batch`, and every matrix's rows
    /// handed out by `split`, in the prefill and in the two steps.
    fn batched(
        blob: &[u8],
        kv: KvType,
        prompt: &[u32],
        next: u32,
        batch: usize,
        split: &dyn RowSplit,
    ) -> (Vec<u8>, Vec<Vec<f32>>) {
        let g = Gguf::parse(blob).unwrap();
        let m = Model::load(&g).unwrap();
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut pbuf = vec![0u8; Prefill::bytes_needed(&m.hparams, batch)];
        let mut p = Prefill::new(&m.hparams, batch, &mut pbuf).unwrap();
        let (last, head) = prompt.split_last().unwrap();
        prefill(&m, &mut s, &mut p, head, 0, split).unwrap();
        let a = forward_split(&m, &mut s, *last, head.len(), split).unwrap().to_vec();
        let b = forward_split(&m, &mut s, next, prompt.len(), split).unwrap().to_vec();
        (buf, vec![a, b])
    }

    #[test]
    fn batched_prefill_leaves_the_same_bits_as_per_token_steps() {
        // Q8_0, F16 and F32 weights; every KV type; batches smaller than, equal to and larger
        // than the prompt's head; the whole run state (cache included) compared byte for byte.
        for ty in [8, 1, 0] {
            let blob = Spec::gpt2(ty).build();
            for kv in [KvType::Q8_0, KvType::F16, KvType::F32] {
                let expected = by_steps(&blob, kv, &TOKENS, 5);
                for batch in [1, 2, 4, 6, 7, 64] {
                    for split in [&Serial as &dyn RowSplit, &Pieces] {
                        let got = batched(&blob, kv, &TOKENS, 5, batch, split);
                        assert!(got.1 == expected.1, "type {ty}, {kv:?}, batch {batch}: logits");
                        assert!(got.0 == expected.0, "type {ty}, {kv:?}, batch {batch}: state");
                    }
                }
            }
        }
    }

    #[test]
    fn matmul_rows_are_matvec_of_each_token_across_several_tiles() {
        use crate::gguf::GgmlType;
        use crate::model::{F32s, Matrix};
        use crate::ops::{matmul, matvec};
        // 1024 inputs (1088-byte Q8_0 rows, 56 rows per 64 KB tile) by 130 outputs: three tiles,
        // the last one partial; 5 tokens; values from a fixed generator, extremes included.
        let (n, d, p) = (1024, 130, 5);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut w = Vec::new();
        for _ in 0..d * n / QK8_0 {
            w.extend_from_slice(&crate::quant::f32_to_f16_bits(0.01).to_le_bytes());
            w.extend((0..QK8_0).map(|_| match next() % 9 {
                0 => 0x80,
                1 => 0x7f,
                v => (next() as u8).wrapping_add(v as u8),
            }));
        }
        let m = Matrix { ty: GgmlType::Q8_0, n_in: n, n_out: d, data: &w };
        let bias: Vec<u8> = (0..d).flat_map(|i| (i as f32 * 0.5 - 3.0).to_le_bytes()).collect();
        let bias = F32s { data: &bias };
        let x: Vec<f32> = (0..p * n).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
        for split in [&Serial as &dyn RowSplit, &Pieces] {
            let mut out = vec![f32::NAN; p * d];
            let mut xq = vec![BlockQ8_0::ZERO; p * n / QK8_0];
            matmul(&mut out, &m, Some(bias), &x, &mut xq, split);
            for (t, o) in out.chunks_exact(d).enumerate() {
                let mut want = vec![f32::NAN; d];
                let mut xq1 = vec![BlockQ8_0::ZERO; n / QK8_0];
                matvec(&mut want, &m, Some(bias), &x[t * n..(t + 1) * n], &mut xq1);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(o), bits(&want), "token {t}");
            }
        }
    }

    #[test]
    fn prefill_logits_are_forwards_logits_at_every_position() {
        let blob = Spec::gpt2(8).build();
        let g = Gguf::parse(&blob).unwrap();
        let m = Model::load(&g).unwrap();
        let kv = KvType::Q8_0;
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let expected: Vec<Vec<f32>> = TOKENS
            .iter()
            .enumerate()
            .map(|(p, &t)| forward(&m, &mut s, t, p).unwrap().to_vec())
            .collect();
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut pbuf = vec![0u8; Prefill::bytes_needed(&m.hparams, 3)];
        let mut p = Prefill::new(&m.hparams, 3, &mut pbuf).unwrap();
        let mut got = Vec::new();
        prefill_logits(&m, &mut s, &mut p, &TOKENS, 0, &Serial, |i, l| {
            assert_eq!(i, got.len());
            got.push(l.to_vec());
        })
        .unwrap();
        assert!(got == expected);
        assert!(s.logits() == &expected[TOKENS.len() - 1][..]);
    }

    #[test]
    fn refuses_bad_tokens_positions_and_scratch_before_touching_the_cache() {
        let blob = Spec::gpt2(8).build();
        let g = Gguf::parse(&blob).unwrap();
        let m = Model::load(&g).unwrap();
        let kv = KvType::F32;
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut pbuf = vec![0u8; Prefill::bytes_needed(&m.hparams, 4)];
        let mut p = Prefill::new(&m.hparams, 4, &mut pbuf).unwrap();
        assert_eq!(
            prefill(&m, &mut s, &mut p, &[1, 2, 40], 0, &Serial),
            Err(ForwardError::TokenOutOfRange { token: 40, n_vocab: 40 })
        );
        // T = 8: positions 6, 7, 8.
        assert_eq!(
            prefill(&m, &mut s, &mut p, &[1, 2, 3], 6, &Serial),
            Err(ForwardError::PositionOutOfRange { pos: 8, n_ctx: 8 })
        );
        assert!(buf.iter().all(|&b| b == 0), "the cache was written before the refusal");

        let mut other = m.hparams;
        other.n_ctx = 4;
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut obuf = vec![0u8; Prefill::bytes_needed(&other, 4)];
        let mut o = Prefill::new(&other, 4, &mut obuf).unwrap();
        assert_eq!(prefill(&m, &mut s, &mut o, &[1], 0, &Serial), Err(ForwardError::StateMismatch));
    }

    #[test]
    fn scratch_refuses_zero_batch_and_short_storage() {
        let blob = Spec::gpt2(8).build();
        let g = Gguf::parse(&blob).unwrap();
        let hp = Model::load(&g).unwrap().hparams;
        let mut buf = vec![0u8; Prefill::bytes_needed(&hp, 2)];
        assert_eq!(Prefill::new(&hp, 0, &mut buf).err(), Some(PrefillError::ZeroBatch));
        let needed = Prefill::bytes_needed(&hp, 3);
        assert_eq!(
            Prefill::new(&hp, 3, &mut buf).err(),
            Some(PrefillError::TooSmall { needed, available: buf.len() })
        );
        assert_eq!(
            PrefillError::TooSmall { needed: 10, available: 2 }.to_string(),
            "prefill scratch needs 10 bytes of storage, only 2 given"
        );
        // Any start address: the slack is counted.
        let mut big = vec![0u8; needed + 1];
        assert!(Prefill::new(&hp, 3, &mut big[1..]).is_ok());
    }
}

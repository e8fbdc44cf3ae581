//! The run state: KV cache, activations and logits, carved out of storage the caller provides.
//!
//! Letters: `V` vocabulary, `T` context, `C` width, `F` MLP width, `L` layers.
//!
//! The size is known before anything runs: [`RunState::bytes_needed`] is a `const fn` of the
//! hyper-parameters and the KV element type, so the firmware can size a `static` at build time and
//! the desktop can allocate exactly that. The storage may start at any address: up to
//! [`ALIGN_SLACK`] bytes at its start are skipped to align the f32 buffers, and are counted in
//! [`RunState::bytes_needed`].

use core::fmt;

use crate::model::HParams;
use crate::ops::{dot_lanes, dot_q8_0, f16_row_to_f32, matvec_q8_0_rows, weighted_rows_q8_0};
use crate::quant::{f32_to_f16_bits, quantize_row_q8_0, BlockQ8_0, Q8_0_BLOCK_BYTES, QK8_0};

/// Bytes that may be skipped at the start of the storage to align the f32 buffers.
pub const ALIGN_SLACK: usize = core::mem::align_of::<f32>() - 1;

/// Element type of the KV cache, chosen per session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KvType {
    /// Q8_0 blocks along each position's `C` values (needs `C` a multiple of 32): 34 bytes per 32.
    Q8_0,
    /// IEEE half: 2 bytes per value.
    F16,
    /// f32: 4 bytes per value.
    F32,
}

impl KvType {
    /// Bytes to store one position's keys (or values) for one layer, `C` values.
    pub const fn row_bytes(self, n_embd: usize) -> usize {
        match self {
            Self::Q8_0 => n_embd / QK8_0 * Q8_0_BLOCK_BYTES,
            Self::F16 => n_embd.saturating_mul(2),
            Self::F32 => n_embd.saturating_mul(4),
        }
    }

    /// The name used on the command line (`q8_0`, `f16`, `f32`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
            Self::F16 => "f16",
            Self::F32 => "f32",
        }
    }
}

/// Why a run state cannot be built in the storage given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StateError {
    /// The storage is smaller than [`RunState::bytes_needed`].
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// A Q8_0 KV cache needs the width to be a whole number of 32-value blocks.
    KvWidthNotBlocks {
        /// The width `C`.
        n_embd: usize,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall { needed, available } => write!(
                f,
                "run state needs {needed} bytes of storage, only {available} given"
            ),
            Self::KvWidthNotBlocks { n_embd } => write!(
                f,
                "a q8_0 KV cache needs the width to be a multiple of {QK8_0}, the model's is {n_embd}"
            ),
        }
    }
}

impl core::error::Error for StateError {}

/// Values of an f16 or f32 cache row taken at a time by [`KvCache::dot`] (and widened at a time
/// by [`KvCache::axpy`]); a head is usually 32 to 128 values.
const F16_CHUNK: usize = 64;

/// Sizes of the 4-byte buffers (f32, and the u32 token history last), in values, in storage order.
const fn f32_lens(hp: &HParams) -> [usize; 8] {
    let c = hp.n_embd;
    [
        c,                   // x
        c,                   // xb
        c,                   // xb2
        c.saturating_mul(3), // qkv
        hp.n_ff,             // hb
        hp.n_ctx,            // att
        hp.n_vocab,          // logits
        hp.n_ctx,            // tokens (u32)
    ]
}

/// Q8_0 blocks for quantizing the widest matrix input (`C` or `F`).
const fn xq_blocks(hp: &HParams) -> usize {
    let widest = if hp.n_ff > hp.n_embd { hp.n_ff } else { hp.n_embd };
    widest / QK8_0
}

/// Values of one KV cache (keys or values): `(L, T, C)`.
const fn kv_rows(hp: &HParams) -> usize {
    hp.n_layer.saturating_mul(hp.n_ctx)
}

/// Calls `f(i, q, d)` for each stretch of a row of Q8_0 blocks that covers values `off..off + n`,
/// in order: `q` are the stretch's quantized values (one block or part of one), `d` its block's
/// scale and `i` where the stretch starts within `0..n`. Kernels then scale once per block.
fn for_each_block(
    blocks: &[BlockQ8_0],
    off: usize,
    n: usize,
    mut f: impl FnMut(usize, &[i8], f32),
) {
    let mut i = 0;
    while i < n {
        let e = off + i;
        let Some(blk) = blocks.get(e / QK8_0) else { return };
        let start = e % QK8_0;
        let len = (QK8_0 - start).min(n - i);
        let Some(q) = blk.qs.get(start..start + len) else { return };
        f(i, q, blk.scale());
        i += len;
    }
}

/// One cache (keys or values), `(L, T, C)` of the chosen element type.
enum KvCache<'s> {
    Q8_0(&'s mut [BlockQ8_0]),
    F16(&'s mut [u16]),
    F32(&'s mut [f32]),
}

impl KvCache<'_> {
    /// Stores `x(C)` as row `row` (`layer * T + pos`).
    fn store(&mut self, row: usize, c: usize, x: &[f32]) {
        match self {
            Self::Q8_0(b) => {
                let nb = c / QK8_0;
                if let Some(dst) = b.get_mut(row * nb..(row + 1) * nb) {
                    quantize_row_q8_0(dst, x);
                }
            }
            Self::F16(h) => {
                if let Some(dst) = h.get_mut(row * c..(row + 1) * c) {
                    for (d, &v) in dst.iter_mut().zip(x) {
                        *d = f32_to_f16_bits(v);
                    }
                }
            }
            Self::F32(f) => {
                if let Some(dst) = f.get_mut(row * c..(row + 1) * c) {
                    for (d, &v) in dst.iter_mut().zip(x) {
                        *d = v;
                    }
                }
            }
        }
    }

    /// `sum_i q(i) * kv(row, off + i)`: for F16 and F32, chunks of [`F16_CHUNK`] values each summed
    /// in `ops::dot_lanes`' eight lanes, the chunks added in order (the same bits for both types
    /// when the f16 values widen to the f32 ones); for Q8_0, in order within each block, each
    /// block's sum scaled once and added in block order.
    fn dot(&self, row: usize, c: usize, off: usize, q: &[f32]) -> f32 {
        let mut s = 0.0f32;
        match self {
            Self::Q8_0(b) => {
                let nb = c / QK8_0;
                let Some(blocks) = b.get(row * nb..(row + 1) * nb) else { return 0.0 };
                // Per block: sum_j q(j) * k_q(j) in order, then times the block's scale.
                for_each_block(blocks, off, q.len(), |i, kq, d| {
                    let mut p = 0.0f32;
                    for (&qi, &k) in q.get(i..).unwrap_or(&[]).iter().zip(kq) {
                        p += qi * f32::from(k);
                    }
                    s += p * d;
                });
            }
            Self::F16(h) => {
                if let Some(src) = h.get(row * c + off..) {
                    // Widened a chunk at a time (exactly), each chunk summed in the lanes of
                    // `dot_lanes`, the chunks in order.
                    let mut wide = [0.0f32; F16_CHUNK];
                    for (qc, hc) in q.chunks(F16_CHUNK).zip(src.chunks(F16_CHUNK)) {
                        f16_row_to_f32(&mut wide, hc);
                        s += dot_lanes(qc, wide.iter().take(hc.len()).copied());
                    }
                }
            }
            Self::F32(f) => {
                if let Some(src) = f.get(row * c + off..) {
                    for (qc, kc) in q.chunks(F16_CHUNK).zip(src.chunks(F16_CHUNK)) {
                        s += dot_lanes(qc, kc.iter().copied());
                    }
                }
            }
        }
        s
    }

    /// `out(i) += a * kv(row, off + i)` (for Q8_0, `out(i) += (a * d) * q(i)`, `d` the block's
    /// scale).
    fn axpy(&self, out: &mut [f32], a: f32, row: usize, c: usize, off: usize) {
        match self {
            Self::Q8_0(b) => {
                let nb = c / QK8_0;
                let Some(blocks) = b.get(row * nb..(row + 1) * nb) else { return };
                // Per block: the weight times the block's scale once, then times each value.
                for_each_block(blocks, off, out.len(), |i, vq, d| {
                    let ad = a * d;
                    for (o, &v) in out.get_mut(i..).unwrap_or(&mut []).iter_mut().zip(vq) {
                        *o += ad * f32::from(v);
                    }
                });
            }
            Self::F16(h) => {
                if let Some(src) = h.get(row * c + off..) {
                    let mut wide = [0.0f32; F16_CHUNK];
                    for (oc, hc) in out.chunks_mut(F16_CHUNK).zip(src.chunks(F16_CHUNK)) {
                        f16_row_to_f32(&mut wide, hc);
                        for (o, &v) in oc.iter_mut().zip(wide.iter().take(hc.len())) {
                            *o += a * v;
                        }
                    }
                }
            }
            Self::F32(f) => {
                if let Some(src) = f.get(row * c + off..) {
                    for (o, &v) in out.iter_mut().zip(src) {
                        *o += a * v;
                    }
                }
            }
        }
    }
}

/// The mutable state of one generation: activations of the current position, logits, and the KV
/// cache of every position so far, all in storage borrowed from the caller.
pub struct RunState<'s> {
    /// The hyper-parameters the state was sized for.
    hparams: HParams,
    /// KV element type.
    kv: KvType,
    /// Residual stream, `(C)`.
    pub(crate) x: &'s mut [f32],
    /// Layer norm output, then attention output, `(C)`.
    pub(crate) xb: &'s mut [f32],
    /// Projection output added to the residual, `(C)`.
    pub(crate) xb2: &'s mut [f32],
    /// Query, key, value of the current position, `(3C)`.
    pub(crate) qkv: &'s mut [f32],
    /// MLP hidden activation, `(F)`.
    pub(crate) hb: &'s mut [f32],
    /// Attention scores of one head over the positions so far, `(T)`.
    pub(crate) att: &'s mut [f32],
    /// Output logits, `(V)`.
    pub(crate) logits: &'s mut [f32],
    /// The token fed at each position so far, `(T)`: the history samplers look back over.
    tokens: &'s mut [u32],
    /// Q8_0 copy of a matrix input, `(max(C, F) / 32)` blocks.
    pub(crate) xq: &'s mut [BlockQ8_0],
    /// Keys, `(L, T, C)`.
    k_cache: KvCache<'s>,
    /// Values, `(L, T, C)`.
    v_cache: KvCache<'s>,
}

/// Splits `n` items of `size` bytes off the front of `rest`.
fn take<'s>(rest: &mut &'s mut [u8], n: usize, size: usize) -> &'s mut [u8] {
    let all = core::mem::take(rest);
    let at = n.saturating_mul(size).min(all.len());
    let (head, tail) = all.split_at_mut(at);
    *rest = tail;
    head
}

impl<'s> RunState<'s> {
    /// Exact bytes of storage a run state needs for `hp` with a KV cache of `kv`, including
    /// [`ALIGN_SLACK`]. Saturates at `usize::MAX` rather than overflowing.
    pub const fn bytes_needed(hp: &HParams, kv: KvType) -> usize {
        let lens = f32_lens(hp);
        let mut f32s = 0usize;
        let mut i = 0;
        while i < lens.len() {
            f32s = f32s.saturating_add(lens[i]);
            i += 1;
        }
        let kv_bytes = kv_rows(hp).saturating_mul(kv.row_bytes(hp.n_embd)).saturating_mul(2);
        ALIGN_SLACK
            .saturating_add(f32s.saturating_mul(4))
            .saturating_add(kv_bytes)
            .saturating_add(xq_blocks(hp).saturating_mul(Q8_0_BLOCK_BYTES))
    }

    /// Carves a run state for `hp` with a `kv` cache out of `storage`, which must hold at least
    /// [`RunState::bytes_needed`] bytes. The state starts empty (position 0).
    pub fn new(hp: &HParams, kv: KvType, storage: &'s mut [u8]) -> Result<Self, StateError> {
        if kv == KvType::Q8_0 && hp.n_embd % QK8_0 != 0 {
            return Err(StateError::KvWidthNotBlocks { n_embd: hp.n_embd });
        }
        let needed = Self::bytes_needed(hp, kv);
        if storage.len() < needed {
            return Err(StateError::TooSmall { needed, available: storage.len() });
        }
        let skip = storage.as_ptr().align_offset(core::mem::align_of::<f32>()).min(ALIGN_SLACK);
        let mut rest = &mut storage[skip..];

        let lens = f32_lens(hp);
        let too_small = StateError::TooSmall { needed, available: 0 };
        let f32_buf = |rest: &mut &'s mut [u8], n: usize| -> Result<&'s mut [f32], StateError> {
            let bytes = take(rest, n, 4);
            bytemuck::try_cast_slice_mut(bytes).map_err(|_| too_small)
        };
        let x = f32_buf(&mut rest, lens[0])?;
        let xb = f32_buf(&mut rest, lens[1])?;
        let xb2 = f32_buf(&mut rest, lens[2])?;
        let qkv = f32_buf(&mut rest, lens[3])?;
        let hb = f32_buf(&mut rest, lens[4])?;
        let att = f32_buf(&mut rest, lens[5])?;
        let logits = f32_buf(&mut rest, lens[6])?;
        let tokens =
            bytemuck::try_cast_slice_mut(take(&mut rest, lens[7], 4)).map_err(|_| too_small)?;
        let rows = kv_rows(hp);
        let cache = |rest: &mut &'s mut [u8]| -> Result<KvCache<'s>, StateError> {
            let values = rows.saturating_mul(hp.n_embd);
            Ok(match kv {
                KvType::F32 => KvCache::F32(f32_buf(rest, values)?),
                KvType::F16 => KvCache::F16(
                    bytemuck::try_cast_slice_mut(take(rest, values, 2)).map_err(|_| too_small)?,
                ),
                KvType::Q8_0 => KvCache::Q8_0(
                    bytemuck::try_cast_slice_mut(take(rest, values / QK8_0, Q8_0_BLOCK_BYTES))
                        .map_err(|_| too_small)?,
                ),
            })
        };
        let k_cache = cache(&mut rest)?;
        let v_cache = cache(&mut rest)?;
        let xq = bytemuck::try_cast_slice_mut(take(&mut rest, xq_blocks(hp), Q8_0_BLOCK_BYTES))
            .map_err(|_| too_small)?;
        let mut state = Self {
            hparams: *hp,
            kv,
            x,
            xb,
            xb2,
            qkv,
            hb,
            att,
            logits,
            tokens,
            xq,
            k_cache,
            v_cache,
        };
        state.clear();
        Ok(state)
    }

    /// Zeroes every buffer (a fresh state; caches are only read at positions already written, so
    /// this is for reproducibility of the bytes, not correctness).
    pub fn clear(&mut self) {
        for buf in [
            &mut *self.x,
            &mut *self.xb,
            &mut *self.xb2,
            &mut *self.qkv,
            &mut *self.hb,
            &mut *self.att,
            &mut *self.logits,
        ] {
            buf.fill(0.0);
        }
        self.tokens.fill(0);
        self.xq.fill(BlockQ8_0::ZERO);
        for cache in [&mut self.k_cache, &mut self.v_cache] {
            match cache {
                KvCache::Q8_0(b) => b.fill(BlockQ8_0::ZERO),
                KvCache::F16(h) => h.fill(0),
                KvCache::F32(f) => f.fill(0.0),
            }
        }
    }

    /// The hyper-parameters this state was sized for.
    pub fn hparams(&self) -> &HParams {
        &self.hparams
    }

    /// The KV cache element type.
    pub fn kv_type(&self) -> KvType {
        self.kv
    }

    /// The logits of the last forward step, `(V)`.
    pub fn logits(&self) -> &[f32] {
        self.logits
    }

    /// Records `token` as fed at `pos` (ignored past the context).
    pub(crate) fn record_token(&mut self, pos: usize, token: u32) {
        if let Some(t) = self.tokens.get_mut(pos) {
            *t = token;
        }
    }

    /// The logits of the last step, for a sampler to work in, and the tokens fed at positions
    /// `0..len`, `((V), (len))`.
    pub(crate) fn logits_and_history(&mut self, len: usize) -> (&mut [f32], &[u32]) {
        let len = len.min(self.tokens.len());
        (&mut *self.logits, &self.tokens[..len])
    }

    /// Stores the current position's keys and values (from `qkv`) for `layer` at `pos`.
    pub(crate) fn store_kv(&mut self, layer: usize, pos: usize) {
        let c = self.hparams.n_embd;
        let row = layer * self.hparams.n_ctx + pos;
        let (k, v) = match self.qkv.get(c..3 * c) {
            Some(kv) => kv.split_at(c),
            None => return,
        };
        self.k_cache.store(row, c, k);
        self.v_cache.store(row, c, v);
    }

    /// Causal attention of the current query (in `qkv`) over positions `0..=pos` of `layer`, one
    /// head at a time, into `xb`:
    /// `att(t) = softmax_t(q_h . k_h(t) / sqrt(HS))`, `xb_h = sum_t att(t) * v_h(t)`.
    ///
    /// With a Q8_0 cache and heads of whole blocks (`HS` a multiple of 32), the query is quantized
    /// to Q8_0 as a matrix input is, and `q_h . k_h(t)` is the Q8_0 dot product, exact in `i32` per
    /// block and scaled once per block (what llama.cpp does with Q8_0 keys), computed for all `t`
    /// by the matrix-vector kernel; the values are summed by [`weighted_rows_q8_0`], four positions
    /// at a time. Otherwise the f32 query meets each cached key in f32, and values are added one
    /// position at a time.
    pub(crate) fn attend(&mut self, layer: usize, pos: usize) {
        let HParams { n_embd: c, n_head, n_ctx, .. } = self.hparams;
        let hs = self.hparams.head_dim();
        let scale = 1.0 / libm::sqrtf(hs as f32);
        let base = layer * n_ctx;
        let att = match self.att.get_mut(..=pos) {
            Some(a) => a,
            None => return,
        };
        for h in 0..n_head {
            let off = h * hs;
            let Some(q) = self.qkv.get(off..off + hs) else { return };
            match (&self.k_cache, self.xq.get_mut(..hs / QK8_0)) {
                (KvCache::Q8_0(k), Some(qb)) if hs % QK8_0 == 0 => {
                    quantize_row_q8_0(qb, q);
                    scores_q8_0(att, k, base, c, off, qb);
                    for a in att.iter_mut() {
                        *a *= scale;
                    }
                }
                _ => {
                    for (t, a) in att.iter_mut().enumerate() {
                        *a = self.k_cache.dot(base + t, c, off, q) * scale;
                    }
                }
            }
            crate::ops::softmax(att);
            let Some(out) = self.xb.get_mut(off..off + hs) else { return };
            out.fill(0.0);
            match &self.v_cache {
                KvCache::Q8_0(v) if hs % QK8_0 == 0 && off % QK8_0 == 0 => {
                    let nb = c / QK8_0;
                    let Some(blocks) = v.get(base * nb + off / QK8_0..) else { return };
                    weighted_rows_q8_0(
                        out,
                        att,
                        bytemuck::cast_slice(blocks),
                        nb * Q8_0_BLOCK_BYTES,
                    );
                }
                _ => {
                    for (t, &a) in att.iter().enumerate() {
                        self.v_cache.axpy(out, a, base + t, c, off);
                    }
                }
            }
        }
    }
}

/// `att(t) = sum_b (d_q(b) * d_k(t, b)) * sum_j q_q(b, j) * q_k(t, b, j)` for `t` in
/// `0..att.len()`: the query's blocks `qb` against the same blocks (values `off..`, `off` a
/// multiple of 32) of the cached keys of rows `first_row + t`, `C` values a row. The rows are a
/// Q8_0 matrix with a stride of `C / 32` blocks, read for `qb.len()` blocks each, which is what
/// [`matvec_q8_0_rows`] computes (with the DSP kernel on Cortex-M); a last row whose whole stride
/// is not in the cache goes through [`dot_q8_0`], the same bits.
fn scores_q8_0(
    att: &mut [f32],
    k: &[BlockQ8_0],
    first_row: usize,
    c: usize,
    off: usize,
    qb: &[BlockQ8_0],
) {
    let nb = c / QK8_0;
    let stride = nb * Q8_0_BLOCK_BYTES;
    let Some(blocks) = k.get(first_row * nb + off / QK8_0..) else { return };
    let bytes: &[u8] = bytemuck::cast_slice(blocks);
    let full = att.len().min(bytes.len() / stride.max(1));
    let (head, tail) = att.split_at_mut(full);
    matvec_q8_0_rows(head, bytes, stride, qb);
    for (t, a) in tail.iter_mut().enumerate() {
        *a = bytes.get((full + t) * stride..).map_or(0.0, |row| dot_q8_0(row, qb));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::f16_bits_to_f32;

    #[test]
    fn f16_cache_rows_give_the_bits_of_the_f32_rows_they_widen_to() {
        // Rows of 300 values with every kind of f16 (subnormals, infinities and NaNs included),
        // read at offsets and lengths that cross the chunk size.
        let c = 300;
        let mut bits: Vec<u16> = (0..3 * c).map(|i| (i as u16).wrapping_mul(40_503)).collect();
        let mut wide: Vec<f32> = bits.iter().map(|&h| f16_bits_to_f32(h)).collect();
        let (f16, f32) = (KvCache::F16(&mut bits), KvCache::F32(&mut wide));
        // The same bits, except that which NaN comes out of an operation on two NaNs depends on
        // the order the compiler gives its operands: any NaN stands for any other.
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        for (row, off, n) in [(0, 0, 32), (1, 7, 64), (1, 0, 65), (2, 100, 200), (2, 0, 300)] {
            let q: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let (a, b) = (f16.dot(row, c, off, &q), f32.dot(row, c, off, &q));
            assert!(same(a, b), "dot {row} {off} {n}: {a} {b}");
            let (mut a, mut b) = (q.clone(), q.clone());
            f16.axpy(&mut a, 0.75, row, c, off);
            f32.axpy(&mut b, 0.75, row, c, off);
            assert!(a.iter().zip(&b).all(|(&x, &y)| same(x, y)), "axpy {row} {off} {n}");
        }
        // And the f32 dot is chunks of eight-lane sums, added in order.
        let q: Vec<f32> = (0..130).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut w: Vec<f32> = (0..c).map(|i| (i as f32 * 0.07).sin()).collect();
        let want = q
            .chunks(F16_CHUNK)
            .zip(w.chunks(F16_CHUNK))
            .fold(0.0f32, |s, (qc, kc)| s + dot_lanes(qc, kc.iter().copied()));
        assert_eq!(KvCache::F32(&mut w).dot(0, c, 0, &q).to_bits(), want.to_bits());
    }

    fn hp(n_embd: usize) -> HParams {
        HParams {
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

    #[test]
    fn bytes_needed_adds_up_every_buffer() {
        let h = hp(32);
        // f32: x, xb, xb2 (3 * 32), qkv 96, hb 128, att 4, logits 10; u32: tokens 4 = 338 values.
        let f32s = 338 * 4;
        let xq = (128 / 32) * 34;
        let kv_rows = 2 * 4;
        assert_eq!(RunState::bytes_needed(&h, KvType::F32), 3 + f32s + xq + 2 * kv_rows * 32 * 4);
        assert_eq!(RunState::bytes_needed(&h, KvType::F16), 3 + f32s + xq + 2 * kv_rows * 32 * 2);
        assert_eq!(RunState::bytes_needed(&h, KvType::Q8_0), 3 + f32s + xq + 2 * kv_rows * 34);
    }

    #[test]
    fn bytes_needed_is_usable_in_const_context() {
        const H: HParams = HParams {
            n_vocab: 512,
            n_ctx: 128,
            n_embd: 64,
            n_head: 4,
            n_layer: 2,
            n_ff: 256,
            eps: 1e-5,
            eos_token: Some(0),
        };
        const N: usize = RunState::bytes_needed(&H, KvType::Q8_0);
        static STORAGE: [u8; N] = [0; N];
        assert_eq!(STORAGE.len(), N);
    }

    #[test]
    fn rejects_storage_smaller_than_needed_naming_both_sizes() {
        let h = hp(32);
        let needed = RunState::bytes_needed(&h, KvType::F32);
        let mut buf = vec![0u8; needed - 1];
        let err = RunState::new(&h, KvType::F32, &mut buf).err();
        assert_eq!(err, Some(StateError::TooSmall { needed, available: needed - 1 }));
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains(&needed.to_string()) && msg.contains(&(needed - 1).to_string()));
    }

    #[test]
    fn accepts_exact_storage_at_any_alignment() {
        let h = hp(32);
        for kv in [KvType::F32, KvType::F16, KvType::Q8_0] {
            let needed = RunState::bytes_needed(&h, kv);
            let mut buf = vec![0u8; needed + 3];
            for start in 0..4 {
                assert!(
                    RunState::new(&h, kv, &mut buf[start..start + needed]).is_ok(),
                    "{kv:?} {start}"
                );
            }
        }
    }

    #[test]
    fn rejects_q8_0_kv_when_width_is_not_blocks() {
        let h = hp(2);
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            RunState::new(&h, KvType::Q8_0, &mut buf).err(),
            Some(StateError::KvWidthNotBlocks { n_embd: 2 })
        );
        assert!(RunState::new(&h, KvType::F32, &mut buf).is_ok());
    }

    #[test]
    fn attention_over_one_position_returns_its_value() {
        // With a single position the softmax weight is 1, so each head's output is v itself.
        let h = hp(32);
        for kv in [KvType::F32, KvType::F16, KvType::Q8_0] {
            let mut buf = vec![0u8; RunState::bytes_needed(&h, kv)];
            let mut s = RunState::new(&h, kv, &mut buf).unwrap();
            for (i, v) in s.qkv.iter_mut().enumerate() {
                *v = (i % 32) as f32 * 0.25 - 4.0;
            }
            s.store_kv(1, 0);
            s.attend(1, 0);
            let v: Vec<f32> = s.qkv[64..96].to_vec();
            let tol = if kv == KvType::Q8_0 { 4.0 / 127.0 } else { 0.0 };
            for (a, b) in s.xb.iter().zip(&v) {
                assert!((a - b).abs() <= tol, "{kv:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn q8_0_attention_matches_f32_attention_when_the_cache_is_exact() {
        // Integer keys and values with 127 in every block quantize exactly (d = 1), so the per-block
        // Q8_0 kernels must give what the f32 cache gives. C = 96, two heads of 48: each head
        // covers one whole block and half of another.
        let h = hp(96);
        let run = |kv: KvType| {
            let mut buf = vec![0u8; RunState::bytes_needed(&h, kv)];
            let mut s = RunState::new(&h, kv, &mut buf).unwrap();
            for pos in 0..3 {
                for (i, v) in s.qkv.iter_mut().enumerate() {
                    *v = if i % 32 == 5 { 127.0 } else { ((i * 7 + pos * 13) % 41) as f32 - 20.0 };
                }
                s.store_kv(1, pos);
            }
            for (i, v) in s.qkv[..96].iter_mut().enumerate() {
                *v = ((i % 5) as f32 - 2.0) / 64.0;
            }
            s.attend(1, 2);
            s.xb.to_vec()
        };
        let (f, q) = (run(KvType::F32), run(KvType::Q8_0));
        assert!(f.iter().all(|v| v.is_finite()));
        assert_eq!(f, q);
    }

    #[test]
    fn q8_0_attention_with_block_heads_takes_integer_dots_exactly() {
        // C = 64, two heads of 32 (one block each). Keys and values are integers with 127 in
        // every block (d = 1), the query is n / 64 with 127 / 64 in each head (d = 1/64): all exact
        // in Q8_0, so the integer dot products must give the f32 cache's bits. Layer 1 at the last
        // position reaches the end of the cache, where head 1's last key has no whole row stride
        // after it.
        let h = HParams { n_embd: 64, n_ctx: 4, ..hp(64) };
        let run = |kv: KvType| {
            let mut buf = vec![0u8; RunState::bytes_needed(&h, kv)];
            let mut s = RunState::new(&h, kv, &mut buf).unwrap();
            for pos in 0..4 {
                for (i, v) in s.qkv.iter_mut().enumerate() {
                    *v = if i % 32 == 9 { 127.0 } else { ((i * 5 + pos * 11) % 37) as f32 - 18.0 };
                }
                s.store_kv(1, pos);
            }
            for (i, v) in s.qkv[..64].iter_mut().enumerate() {
                let n = if i % 32 == 3 { -127.0 } else { ((i * 3) % 23) as f32 - 11.0 };
                *v = n / 64.0;
            }
            s.attend(1, 3);
            s.xb.to_vec()
        };
        let (f, q) = (run(KvType::F32), run(KvType::Q8_0));
        assert!(f.iter().all(|v| v.is_finite()));
        assert_eq!(f, q);
    }

    #[test]
    fn q8_0_attention_with_block_heads_tracks_f32_attention() {
        let h = HParams { n_embd: 64, n_ctx: 4, ..hp(64) };
        let run = |kv: KvType| {
            let mut buf = vec![0u8; RunState::bytes_needed(&h, kv)];
            let mut s = RunState::new(&h, kv, &mut buf).unwrap();
            for pos in 0..4 {
                for (i, v) in s.qkv.iter_mut().enumerate() {
                    *v = libm::sinf((i * 7 + pos * 31) as f32 * 0.37) * 2.0;
                }
                s.store_kv(0, pos);
            }
            s.attend(0, 3);
            s.xb.to_vec()
        };
        let (f, q) = (run(KvType::F32), run(KvType::Q8_0));
        assert_ne!(f, q);
        for (a, b) in f.iter().zip(&q) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
    }

    #[test]
    fn attention_weights_follow_scaled_dot_products() {
        // C = 32, two heads of 16. Position 0: k = 0, v = 1; position 1: k = e_0 * 4 (head 0 only),
        // v = 3. Query of head 0 = e_0: scores 0 and 4/sqrt(16) = 1; head 1 scores 0 and 0.
        let h = hp(32);
        let mut buf = vec![0u8; RunState::bytes_needed(&h, KvType::F32)];
        let mut s = RunState::new(&h, KvType::F32, &mut buf).unwrap();
        s.qkv.fill(0.0);
        s.qkv[64..96].fill(1.0);
        s.store_kv(0, 0);
        s.qkv.fill(0.0);
        s.qkv[32] = 4.0;
        s.qkv[64..96].fill(3.0);
        s.store_kv(0, 1);
        s.qkv[..32].fill(0.0);
        s.qkv[0] = 1.0;
        s.attend(0, 1);
        let w1 = libm::expf(1.0) / (1.0 + libm::expf(1.0));
        let head0 = (1.0 - w1) * 1.0 + w1 * 3.0;
        assert!((s.xb[0] - head0).abs() < 1e-6, "{}", s.xb[0]);
        assert!((s.xb[16] - 2.0).abs() < 1e-6, "{}", s.xb[16]);
    }
}

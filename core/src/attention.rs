//! Causal self-attention of one position over the KV cache, one head at a time.
//!
//! Letters: `T` context, `C` width, `H` heads, `HS = C / H` head size.

use crate::kv_cache::{KvCache, KvRows};
use crate::ops::{dot_q8_0, matvec_q8_0_rows, softmax, softmax_scaled, weighted_rows_q8_0};
use crate::quant::{quantize_row_q8_0, BlockQ8_0, Q8Rows, QK8_0};

/// `out_h = sum_t att(t) * v_h(t)` with `att(t) = softmax_t(q_h . k_h(t) / sqrt(HS))` for each
/// head `h` of `q(C)`, over positions `t` in `0..=pos` of `layer` in `cache`. `att(T)` holds the
/// scores, `qq` at least `HS / 32` blocks for the quantized query.
///
/// With a Q8_0 cache and heads of whole blocks (`HS` a multiple of 32), the query is quantized
/// to Q8_0 as a matrix input is, and `q_h . k_h(t)` is the Q8_0 dot product, exact in `i32` per
/// block and scaled once per block (what llama.cpp does with Q8_0 keys), computed for all `t`
/// by the matrix-vector kernel; the values are summed by [`weighted_rows_q8_0`], four positions
/// at a time. Otherwise the f32 query meets each cached key in f32, and values are added one
/// position at a time.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    out: &mut [f32],
    att: &mut [f32],
    qq: &mut [BlockQ8_0],
    q: &[f32],
    cache: &KvCache<'_>,
    layer: usize,
    pos: usize,
    n_head: usize,
) {
    let c = cache.c;
    let Some(hs) = c.checked_div(n_head) else { return };
    let scale = 1.0 / libm::sqrtf(hs as f32);
    let Some(att) = att.get_mut(..=pos) else { return };
    for h in 0..n_head {
        let off = h * hs;
        let Some(qh) = q.get(off..off + hs) else { return };
        // Scores, run by run of positions in consecutive rows (one run without beams).
        match (&cache.k, qq.get_mut(..hs / QK8_0)) {
            (KvRows::Q8_0(k), Some(qb)) if hs % QK8_0 == 0 => {
                quantize_row_q8_0(qb, qh);
                cache.for_each_segment(layer, pos, |s| {
                    if let Some(a) = att.get_mut(s.pos..s.pos + s.len) {
                        scores_q8_0(a, k, s.row, c, off, qb);
                    }
                });
                softmax_scaled(att, scale);
            }
            _ => {
                cache.for_each_segment(layer, pos, |s| {
                    for (t, a) in att.iter_mut().skip(s.pos).take(s.len).enumerate() {
                        *a = cache.k.dot(s.row + t, c, off, qh) * scale;
                    }
                });
                softmax(att);
            }
        }
        let Some(out) = out.get_mut(off..off + hs) else { return };
        out.fill(0.0);
        // Values: the runs' weighted sums added in order of position, the same terms in the same
        // order as over one run.
        match &cache.v {
            KvRows::Q8_0(v) if hs % QK8_0 == 0 && off % QK8_0 == 0 => {
                let nb = c / QK8_0;
                cache.for_each_segment(layer, pos, |s| {
                    let (Some(blocks), Some(a)) =
                        (v.get(s.row * nb + off / QK8_0..), att.get(s.pos..s.pos + s.len))
                    else {
                        return;
                    };
                    weighted_rows_q8_0(out, a, Q8Rows { blocks, stride: nb });
                });
            }
            _ => cache.for_each_segment(layer, pos, |s| {
                for (t, &a) in att.iter().skip(s.pos).take(s.len).enumerate() {
                    cache.v.axpy(out, a, s.row + t, c, off);
                }
            }),
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
    let Some(blocks) = k.get(first_row * nb + off / QK8_0..) else { return };
    let rows = Q8Rows { blocks, stride: nb };
    let full = att.len().min(blocks.len() / nb.max(1));
    let (head, tail) = att.split_at_mut(full);
    matvec_q8_0_rows(head, rows, qb);
    for (t, a) in tail.iter_mut().enumerate() {
        *a = rows.from_row(full + t).blocks.get(..qb.len()).map_or(0.0, |row| dot_q8_0(row, qb));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::Arena;
    use crate::kv_cache::KvType;
    use crate::model::test_model::small_hparams;
    use crate::model::HParams;

    /// Stores the keys and values `f(C + i, pos)` and `f(2C + i, pos)` of positions `0..=pos` in
    /// `layer` of a fresh `kv` cache, then attends with the query `q` at `pos`: the output `(C)`.
    fn attend(
        h: &HParams,
        kv: KvType,
        layer: usize,
        pos: usize,
        f: impl Fn(usize, usize) -> f32,
        q: &[f32],
    ) -> Vec<f32> {
        let c = h.n_embd;
        let mut buf = vec![0u8; KvCache::bytes_needed(h, kv)];
        let mut cache = KvCache::carve(&mut Arena::new(&mut buf), h, kv).unwrap();
        for p in 0..=pos {
            let k: Vec<f32> = (c..2 * c).map(|i| f(i, p)).collect();
            let v: Vec<f32> = (2 * c..3 * c).map(|i| f(i, p)).collect();
            cache.store(layer, p, &k, &v);
        }
        let mut out = vec![f32::NAN; c];
        let mut att = vec![0.0; h.n_ctx];
        let mut qq = vec![BlockQ8_0::ZERO; c / QK8_0];
        attention(&mut out, &mut att, &mut qq, q, &cache, layer, pos, h.n_head);
        out
    }

    /// An integer value for `i` at `pos` that Q8_0 holds exactly (scale 1): 127 at `i % 32 ==
    /// mark`, else `(i * a + pos * b) mod (2 * half + 1) - half`.
    fn exact(i: usize, pos: usize, mark: usize, (a, b): (usize, usize), half: usize) -> f32 {
        if i % 32 == mark {
            127.0
        } else {
            ((i * a + pos * b) % (2 * half + 1)) as f32 - half as f32
        }
    }

    /// Attention over a Q8_0 cache gives the f32 cache's (finite) bits.
    fn assert_q8_0_gives_f32_bits(
        h: &HParams,
        layer: usize,
        pos: usize,
        f: impl Fn(usize, usize) -> f32 + Copy,
        q: &[f32],
    ) {
        let a = attend(h, KvType::F32, layer, pos, f, q);
        assert!(a.iter().all(|v| v.is_finite()));
        assert_eq!(a, attend(h, KvType::Q8_0, layer, pos, f, q));
    }

    const KV_TYPES: [KvType; 3] = [KvType::F32, KvType::F16, KvType::Q8_0];

    #[test]
    fn attention_over_one_position_returns_its_value() {
        // With a single position the softmax weight is 1, so each head's output is v itself.
        let h = small_hparams(32);
        let f = |i: usize, _| (i % 32) as f32 * 0.25 - 4.0;
        let v: Vec<f32> = (0..32).map(|i| f(i, 0)).collect();
        for kv in KV_TYPES {
            let out = attend(&h, kv, 1, 0, f, &v);
            let tol = if kv == KvType::Q8_0 { 4.0 / 127.0 } else { 0.0 };
            for (a, b) in out.iter().zip(&v) {
                assert!((a - b).abs() <= tol, "{kv:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn q8_0_attention_matches_f32_attention_when_the_cache_is_exact() {
        // Integer keys and values with 127 in every block quantize exactly (d = 1), so the per-block
        // Q8_0 kernels must give what the f32 cache gives. C = 96, two heads of 48: each head
        // covers one whole block and half of another.
        let h = small_hparams(96);
        let f = |i, pos| exact(i, pos, 5, (7, 13), 20);
        let q: Vec<f32> = (0..96).map(|i| ((i % 5) as f32 - 2.0) / 64.0).collect();
        assert_q8_0_gives_f32_bits(&h, 1, 2, f, &q);
    }

    #[test]
    fn q8_0_attention_with_block_heads_takes_integer_dots_exactly() {
        // C = 64, two heads of 32 (one block each). Keys and values are integers with 127 in
        // every block (d = 1), the query is n / 64 with 127 / 64 in each head (d = 1/64): all exact
        // in Q8_0, so the integer dot products must give the f32 cache's bits. Layer 1 at the last
        // position reaches the end of the cache, where head 1's last key has no whole row stride
        // after it.
        let h = small_hparams(64);
        let f = |i, pos| exact(i, pos, 9, (5, 11), 18);
        let q: Vec<f32> = (0..64)
            .map(|i| if i % 32 == 3 { -127.0 } else { ((i * 3) % 23) as f32 - 11.0 } / 64.0)
            .collect();
        assert_q8_0_gives_f32_bits(&h, 1, 3, f, &q);
    }

    #[test]
    fn q8_0_attention_with_block_heads_tracks_f32_attention() {
        let h = small_hparams(64);
        let f = |i: usize, pos: usize| libm::sinf((i * 7 + pos * 31) as f32 * 0.37) * 2.0;
        let q: Vec<f32> = (0..64).map(|i| f(i, 3)).collect();
        let (a, b) = (attend(&h, KvType::F32, 0, 3, f, &q), attend(&h, KvType::Q8_0, 0, 3, f, &q));
        assert_ne!(a, b);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 0.05, "{x} vs {y}");
        }
    }

    #[test]
    fn attention_weights_follow_scaled_dot_products() {
        // C = 32, two heads of 16. Position 0: k = 0, v = 1; position 1: k = e_0 * 4 (head 0 only),
        // v = 3. Query of head 0 = e_0: scores 0 and 4/sqrt(16) = 1; head 1 scores 0 and 0.
        let h = small_hparams(32);
        let f = |i: usize, pos: usize| match (i, pos) {
            (32, 1) => 4.0,
            (64.., 0) => 1.0,
            (64.., _) => 3.0,
            _ => 0.0,
        };
        let mut q = [0.0f32; 32];
        q[0] = 1.0;
        let out = attend(&h, KvType::F32, 0, 1, f, &q);
        let w1 = libm::expf(1.0) / (1.0 + libm::expf(1.0));
        let head0 = (1.0 - w1) * 1.0 + w1 * 3.0;
        assert!((out[0] - head0).abs() < 1e-6, "{}", out[0]);
        assert!((out[16] - 2.0).abs() < 1e-6, "{}", out[16]);
    }
}

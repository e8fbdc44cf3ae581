//! Causal self-attention of one position over the KV cache, in integers.
//!
//! Letters: `T` context, `C` width, `H` heads, `HS = C / H` head size. Queries, keys and values are
//! int8 blocks of 32 with scales of an 8-bit mantissa times a power of two ([`quantize_row`]), over
//! the whole row of `C`, so a head narrower than a block reads part of one.

use super::kernels::{block_scale, quantize_row, ACT};
use crate::fixed::{rounding_shr, rsqrt, saturate, shift_round, shl_saturating, softmax};
use crate::kv_cache::KvCache;
use crate::ops::dot_i8;
use crate::quant::{BlockQ8_0, QK8_0};

/// Extra fraction bits of the `i32` sums of scores and of weighted values (Q18).
const SUM_EXTRA: i32 = 2;

/// Low bits dropped (rounded) from the product of two 8-bit scale mantissas, so that it times a
/// block's dot product fits in an `i32`: 12 bits kept, within `2^-11` of exact.
const SCALE_PRODUCT_DROP: i32 = 4;

/// Stores the keys `k(C)` and values `v(C)` (Q16) of `pos` in `layer` as int8 blocks. A cache
/// that is not Q8_0 is left alone (the run state refuses it for the integer path).
pub(crate) fn store(cache: &mut KvCache<'_>, layer: usize, pos: usize, k: &[i32], v: &[i32]) {
    let (row, nb) = (cache.row(layer, pos), cache.c / QK8_0);
    for (rows, x) in [(&mut cache.k, k), (&mut cache.v, v)] {
        if let Some(dst) = rows.q8_0_mut().and_then(|b| b.get_mut(row * nb..(row + 1) * nb)) {
            quantize_row(dst, x);
        }
    }
}

/// `sum_{j in off..off+HS} a(j) * b(j)` in Q16 for two rows of int8 blocks: whole blocks by
/// [`dot_i8`], a head's part of a block value by value; 32-bit arithmetic, as the matrix products'.
fn head_dot(a: &[BlockQ8_0], b: &[BlockQ8_0], off: usize, hs: usize) -> i32 {
    let mut sum = 0i32;
    let mut j = off;
    while j < off + hs {
        let (blk, lo) = (j / QK8_0, j % QK8_0);
        let hi = QK8_0.min(lo + off + hs - j);
        let (Some(x), Some(y)) = (a.get(blk), b.get(blk)) else { break };
        let isum = if lo == 0 && hi == QK8_0 {
            dot_i8(&x.qs, &y.qs)
        } else {
            let pairs = x.qs.get(lo..hi).unwrap_or(&[]).iter().zip(y.qs.get(lo..hi).unwrap_or(&[]));
            pairs.map(|(&p, &q)| i32::from(p) * i32::from(q)).sum()
        };
        // Q16 times Q16: m_a m_b 2^(e_a + e_b) units of Q32, so 2^(e_a + e_b - 16) of Q16.
        let ((ma, ea), (mb, eb)) = (block_scale(x), block_scale(y));
        let mm = rounding_shr(ma * mb, SCALE_PRODUCT_DROP as u32);
        let s = ea + eb - ACT as i32 + SCALE_PRODUCT_DROP + SUM_EXTRA;
        sum = sum.saturating_add(shift_round(isum.saturating_mul(mm), s));
        j += hi - lo;
    }
    rounding_shr(sum, SUM_EXTRA as u32)
}

/// `out_h = sum_t att(t) * v_h(t)` with `att(t) = softmax_t(q_h . k_h(t) / sqrt(HS))` for each
/// head `h` of `q(C)` (Q16), over positions `0..=pos` of `layer` in `cache` (Q8_0, holding the integer
/// path's int8 blocks). `att(T)` holds the scores (Q16) then the weights (Q30),
/// `qq` at least `C / 32` blocks for the quantized query. `out(C)` in Q16.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    out: &mut [i32],
    att: &mut [i32],
    qq: &mut [BlockQ8_0],
    q: &[i32],
    cache: &KvCache<'_>,
    layer: usize,
    pos: usize,
    n_head: usize,
) {
    let c = cache.c;
    let nb = c / QK8_0;
    let (Some(k), Some(v)) = (cache.k.q8_0(), cache.v.q8_0()) else { return };
    let Some(hs) = c.checked_div(n_head) else { return };
    // 1 / sqrt(HS) = m 2^e.
    let (m, e) = rsqrt(hs as u64);
    let (Some(att), Some(qq)) = (att.get_mut(..=pos), qq.get_mut(..nb)) else { return };
    quantize_row(qq, q);
    for h in 0..n_head {
        let off = h * hs;
        cache.for_each_segment(layer, pos, |s| {
            for (t, a) in att.iter_mut().skip(s.pos).take(s.len).enumerate() {
                let r = s.row + t;
                let Some(kr) = k.get(r * nb..(r + 1) * nb) else { return };
                let score = i64::from(head_dot(qq, kr, off, hs));
                *a = saturate(shift_round(score * i64::from(m), e));
            }
        });
        softmax(att);
        // Values, block by block of the head: weights rounded to Q16 times values (Q16 units),
        // each term within an `i32` (2^16 * 255 * 127 < 2^31), summed in Q18.
        let mut j = off;
        while j < off + hs {
            let (blk, lo) = (j / QK8_0, j % QK8_0);
            let hi = QK8_0.min(lo + off + hs - j);
            let mut acc = [0i32; QK8_0];
            cache.for_each_segment(layer, pos, |s| {
                for (t, &p) in att.iter().skip(s.pos).take(s.len).enumerate() {
                    let Some(vb) = v.get((s.row + t) * nb + blk) else { return };
                    let (mv, ev) = block_scale(vb);
                    let pk = rounding_shr(p, 30 - ACT) * mv;
                    let s = ev - ACT as i32 + SUM_EXTRA;
                    let terms = acc.iter_mut().zip(&vb.qs).take(hi).skip(lo);
                    // rounding_shr and shl_saturating with the direction and amount fixed for
                    // the block, so the loop over its values has no branch.
                    match s {
                        0.. => terms.for_each(|(a, &q)| {
                            *a = a.saturating_add(shl_saturating(pk * i32::from(q), s as u32));
                        }),
                        -31..=-1 => {
                            let n = s.unsigned_abs();
                            terms.for_each(|(a, &q)| {
                                let x = pk * i32::from(q);
                                *a = a.saturating_add((x >> n) + ((x >> (n - 1)) & 1));
                            })
                        }
                        // Terms below half a unit of Q18 round to 0.
                        _ => {}
                    }
                }
            });
            let dst = out.get_mut(blk * QK8_0 + lo..blk * QK8_0 + hi).unwrap_or(&mut []);
            for (o, &a) in dst.iter_mut().zip(acc.iter().skip(lo)) {
                *o = rounding_shr(a, SUM_EXTRA as u32);
            }
            j += hi - lo;
        }
    }
}

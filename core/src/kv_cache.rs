//! The KV cache: the keys and values of every position so far, in the element type chosen per
//! session.
//!
//! Letters: `T` context, `C` width, `L` layers. Each cache (keys, values) is `(L, T, C)`: row
//! `layer * T + pos` holds one position's `C` values.

use crate::arena::Arena;
use crate::model::HParams;
#[cfg(not(feature = "kv-q8_0-only"))]
use crate::ops::{dot_lanes, f16_row_to_f32};
#[cfg(not(feature = "kv-q8_0-only"))]
use crate::quant::f32_to_f16_bits;
use crate::quant::{quantize_row_q8_0, BlockQ8_0, Q8_0_BLOCK_BYTES, QK8_0};

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

    /// Whether this build's cache can hold this type: every type, except Q8_0 alone with
    /// mote-core's `kv-q8_0-only` feature (a firmware whose KV type, chosen at build time, is Q8_0).
    pub const fn is_built(self) -> bool {
        !cfg!(feature = "kv-q8_0-only") || matches!(self, Self::Q8_0)
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

/// Values of an f16 or f32 cache row taken at a time by [`KvRows::dot`] (and widened at a time
/// by [`KvRows::axpy`]); a head is usually 32 to 128 values.
#[cfg(not(feature = "kv-q8_0-only"))]
pub(crate) const F16_CHUNK: usize = 64;

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
pub(crate) enum KvRows<'s> {
    /// `C / 32` blocks a row.
    Q8_0(&'s mut [BlockQ8_0]),
    /// f16 bits, `C` a row.
    #[cfg(not(feature = "kv-q8_0-only"))]
    F16(&'s mut [u16]),
    /// `C` a row.
    #[cfg(not(feature = "kv-q8_0-only"))]
    F32(&'s mut [f32]),
}

impl<'s> KvRows<'s> {
    /// The blocks of a Q8_0 cache, or `None` for another type.
    pub(crate) fn q8_0(&self) -> Option<&[BlockQ8_0]> {
        match self {
            Self::Q8_0(b) => Some(b),
            #[cfg(not(feature = "kv-q8_0-only"))]
            _ => None,
        }
    }

    /// [`Self::q8_0`], writable.
    pub(crate) fn q8_0_mut(&mut self) -> Option<&mut [BlockQ8_0]> {
        match self {
            Self::Q8_0(b) => Some(b),
            #[cfg(not(feature = "kv-q8_0-only"))]
            _ => None,
        }
    }

    /// Carves one cache of `rows` rows of `C` values out of `arena`.
    fn carve(arena: &mut Arena<'s>, kv: KvType, rows: usize, c: usize) -> Option<Self> {
        let values = rows.saturating_mul(c);
        Some(match kv {
            KvType::Q8_0 => Self::Q8_0(arena.take(values / QK8_0)?),
            #[cfg(not(feature = "kv-q8_0-only"))]
            KvType::F16 => Self::F16(arena.take(values)?),
            #[cfg(not(feature = "kv-q8_0-only"))]
            KvType::F32 => Self::F32(arena.take(values)?),
            #[cfg(feature = "kv-q8_0-only")]
            KvType::F16 | KvType::F32 => return None,
        })
    }

    /// Zeroes every row.
    fn clear(&mut self) {
        match self {
            Self::Q8_0(b) => b.fill(BlockQ8_0::ZERO),
            #[cfg(not(feature = "kv-q8_0-only"))]
            Self::F16(h) => h.fill(0),
            #[cfg(not(feature = "kv-q8_0-only"))]
            Self::F32(f) => f.fill(0.0),
        }
    }

    /// Stores `x(C)` as row `row` (`layer * T + pos`).
    fn store(&mut self, row: usize, c: usize, x: &[f32]) {
        match self {
            Self::Q8_0(b) => {
                let nb = c / QK8_0;
                if let Some(dst) = b.get_mut(row * nb..(row + 1) * nb) {
                    quantize_row_q8_0(dst, x);
                }
            }
            #[cfg(not(feature = "kv-q8_0-only"))]
            Self::F16(h) => {
                if let Some(dst) = h.get_mut(row * c..(row + 1) * c) {
                    for (d, &v) in dst.iter_mut().zip(x) {
                        *d = f32_to_f16_bits(v);
                    }
                }
            }
            #[cfg(not(feature = "kv-q8_0-only"))]
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
    pub(crate) fn dot(&self, row: usize, c: usize, off: usize, q: &[f32]) -> f32 {
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
            #[cfg(not(feature = "kv-q8_0-only"))]
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
            #[cfg(not(feature = "kv-q8_0-only"))]
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
    pub(crate) fn axpy(&self, out: &mut [f32], a: f32, row: usize, c: usize, off: usize) {
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
            #[cfg(not(feature = "kv-q8_0-only"))]
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
            #[cfg(not(feature = "kv-q8_0-only"))]
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

/// The keys and values of every layer at every position so far, for one sequence or for `N`
/// beams of a beam search.
///
/// With beams, every beam `j` owns a slot for each position, and a map says, for each of its
/// positions, whose slot holds that position's keys and values: a beam that continues another
/// beam's sequence takes over that beam's map (`T` bytes), never its cache rows. At each step a
/// beam writes its own slot at the new position, which no map references yet. One sequence is
/// one beam whose map is implicit (every position in its own slot).
pub(crate) struct KvCache<'s> {
    /// Keys, `(L, N, T, C)`.
    pub(crate) k: KvRows<'s>,
    /// Values, `(L, N, T, C)`.
    pub(crate) v: KvRows<'s>,
    /// Values per row, `C`.
    pub(crate) c: usize,
    /// Rows per beam and layer, `T`.
    n_ctx: usize,
    /// Beams, `N`.
    n_beams: usize,
    /// The beam whose positions [`KvCache::store`] writes and attention reads.
    beam: usize,
    /// For each beam and position, the beam whose slot holds it, `(N, T)`; empty for one beam.
    map: &'s mut [u8],
}

/// A run of consecutive positions whose keys and values sit in consecutive rows of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The first position.
    pub(crate) pos: usize,
    /// Positions in the run.
    pub(crate) len: usize,
    /// The cache row of the first position.
    pub(crate) row: usize,
}

impl<'s> KvCache<'s> {
    /// Bytes of both caches for `hp` in `kv`. Saturates rather than overflowing.
    #[cfg(test)]
    pub(crate) const fn bytes_needed(hp: &HParams, kv: KvType) -> usize {
        Self::bytes_needed_beams(hp, kv, 1)
    }

    /// Bytes of both caches and the position maps for `n_beams` beams of `hp` in `kv`.
    /// Saturates rather than overflowing.
    pub(crate) const fn bytes_needed_beams(hp: &HParams, kv: KvType, n_beams: usize) -> usize {
        let rows = hp.n_layer.saturating_mul(hp.n_ctx).saturating_mul(n_beams);
        let map = if n_beams > 1 { n_beams.saturating_mul(hp.n_ctx) } else { 0 };
        rows.saturating_mul(kv.row_bytes(hp.n_embd)).saturating_mul(2).saturating_add(map)
    }

    /// Carves both caches for `hp` in `kv` out of `arena`.
    #[cfg(test)]
    pub(crate) fn carve(arena: &mut Arena<'s>, hp: &HParams, kv: KvType) -> Option<Self> {
        Self::carve_beams(arena, hp, kv, 1)
    }

    /// Carves both caches for `n_beams` (at least 1) beams of `hp` in `kv` out of `arena`. The
    /// position maps (bytes, `(N, T)`) come from [`KvCache::carve_maps`], after every buffer that
    /// needs alignment.
    pub(crate) fn carve_beams(
        arena: &mut Arena<'s>,
        hp: &HParams,
        kv: KvType,
        n_beams: usize,
    ) -> Option<Self> {
        let n_beams = n_beams.max(1);
        let rows = hp.n_layer.saturating_mul(hp.n_ctx).saturating_mul(n_beams);
        Some(Self {
            k: KvRows::carve(arena, kv, rows, hp.n_embd)?,
            v: KvRows::carve(arena, kv, rows, hp.n_embd)?,
            c: hp.n_embd,
            n_ctx: hp.n_ctx,
            n_beams,
            beam: 0,
            map: &mut [],
        })
    }

    /// Carves the position maps of the beams out of `arena` (none for one beam).
    pub(crate) fn carve_maps(&mut self, arena: &mut Arena<'s>) -> Option<()> {
        let n = if self.n_beams > 1 { self.n_beams.saturating_mul(self.n_ctx) } else { 0 };
        self.map = arena.take(n)?;
        Some(())
    }

    /// Zeroes both caches and the maps.
    pub(crate) fn clear(&mut self) {
        self.k.clear();
        self.v.clear();
        self.map.fill(0);
        self.beam = 0;
    }

    /// The row of `pos` in `layer` in the slot of `beam`: `((layer * N) + beam) * T + pos`.
    fn slot_row(&self, layer: usize, beam: usize, pos: usize) -> usize {
        (layer * self.n_beams + beam) * self.n_ctx + pos
    }

    /// The row of `pos` in `layer` for the current beam's own slot.
    pub(crate) fn row(&self, layer: usize, pos: usize) -> usize {
        self.slot_row(layer, self.beam, pos)
    }

    /// Makes `beam` the current one (ignored past `N`), and records that its position `pos` is
    /// in its own slot: the next [`KvCache::store`] at `pos` writes there.
    pub(crate) fn select(&mut self, beam: usize, pos: usize) {
        if beam < self.n_beams {
            self.beam = beam;
            if let Some(m) = self.map.get_mut(beam * self.n_ctx + pos) {
                *m = beam as u8;
            }
        }
    }

    /// The map of `beam`, `(T)`: whose slot holds each of its positions (empty for one beam).
    pub(crate) fn map(&self, beam: usize) -> &[u8] {
        self.map.get(beam * self.n_ctx..(beam + 1) * self.n_ctx).unwrap_or(&[])
    }

    /// Every beam's map, `(N, T)`, to reorder them (empty for one beam).
    pub(crate) fn maps_mut(&mut self) -> &mut [u8] {
        self.map
    }

    /// Calls `f` with each run of positions `0..=pos` of `layer` that sit in consecutive rows,
    /// for the current beam, in order of position.
    pub(crate) fn for_each_segment(&self, layer: usize, pos: usize, mut f: impl FnMut(Segment)) {
        let map = self.map(self.beam);
        let Some(map) = map.get(..=pos) else {
            // One beam: one run, all in its own slot.
            f(Segment { pos: 0, len: pos + 1, row: self.slot_row(layer, self.beam, 0) });
            return;
        };
        let mut start = 0;
        while start <= pos {
            let src = map[start];
            let len = map[start..].iter().take_while(|&&b| b == src).count();
            f(Segment { pos: start, len, row: self.slot_row(layer, usize::from(src), start) });
            start += len;
        }
    }

    /// Stores one position's keys `k(C)` and values `v(C)` for `layer` at `pos`, in the current
    /// beam's slot.
    pub(crate) fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let row = self.row(layer, pos);
        self.k.store(row, self.c, k);
        self.v.store(row, self.c, v);
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
        let (f16, f32) = (KvRows::F16(&mut bits), KvRows::F32(&mut wide));
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
        assert_eq!(KvRows::F32(&mut w).dot(0, c, 0, &q).to_bits(), want.to_bits());
    }
}

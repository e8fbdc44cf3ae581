//! Splitting a matrix product's output over threads. `mote-core` has no threads (it is `no_std`),
//! so it only says how the work divides, through [`RowSplit`], and the desktop crate runs the
//! pieces on its thread pool.
//!
//! Output rows are independent: each is computed by the same code, in the same order, whichever
//! thread computes it, so a split product is bit-identical to [`Serial`]'s.

/// Matrices with fewer weight bytes than this are computed on the calling thread, unless the
/// splitter says otherwise ([`RowSplit::min_bytes`]). Handing pieces to another thread costs tens
/// of microseconds (waking it), more than a small matrix takes, so splitting the small matrices of
/// the bundled model (the largest is 278 KB) slows its decoding down (docs/performance.md).
/// GPT-2 124M's matrices are 0.6 to 41 MB.
pub const SPLIT_MIN_BYTES: usize = 1024 * 1024;

/// Runs a job over disjoint pieces of an output buffer, perhaps on several threads at once.
pub trait RowSplit: Sync {
    /// Calls `job(start, piece)` for disjoint pieces of `out` that together cover it, `start`
    /// being the piece's offset in `out`. Every piece's length, but the last's, is a multiple of
    /// `grain`. The calls may run at the same time, in any order.
    fn split(&self, out: &mut [f32], grain: usize, job: &(dyn Fn(usize, &mut [f32]) + Sync));

    /// Matrices with fewer weight bytes than this are computed on the calling thread, without
    /// [`RowSplit::split`].
    fn min_bytes(&self) -> usize {
        SPLIT_MIN_BYTES
    }
}

/// Everything on the calling thread: one piece, the whole output.
#[derive(Clone, Copy, Debug, Default)]
pub struct Serial;

impl RowSplit for Serial {
    fn split(&self, out: &mut [f32], _grain: usize, job: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        job(0, out);
    }
}

/// Splits `out` with `split` when `weight_bytes` reach its [`RowSplit::min_bytes`], else runs `job` on
/// the whole of it here.
pub(crate) fn split_if_large(
    split: &dyn RowSplit,
    weight_bytes: usize,
    out: &mut [f32],
    grain: usize,
    job: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    if weight_bytes >= split.min_bytes() {
        split.split(out, grain, job);
    } else {
        job(0, out);
    }
}

/// A splitter that cuts every matrix's output, however small, into pieces of one grain and
/// runs them in reverse order, to show that the result does not depend on how the rows are
/// handed out.
#[cfg(test)]
pub(crate) struct Pieces;

#[cfg(test)]
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

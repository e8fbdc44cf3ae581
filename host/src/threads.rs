//! `--threads` and `--batch`: mote-core's [`RowSplit`] hook run on a rayon thread pool, and the
//! batched-prefill scratch, for every command that runs the model.
//!
//! Output rows are independent and each is computed by the same kernel in the same order on
//! whichever thread, so any thread count gives the same bits as one.

use anyhow::{bail, Context as _};
use mote_core::model::HParams;
use mote_core::prefill::Prefill;
use mote_core::split::{RowSplit, Serial};
use rayon::ThreadPool;

/// Positions per batched-prefill pass unless `--batch` says otherwise: a whole prompt of the
/// bundled model, and enough on GPT-2 124M for the weights to be read from memory once per 64
/// tokens; the scratch stays small next to the model (124M: 15 MB, most of it the 64 logit rows
/// that `mote eval` needs).
pub const DEFAULT_BATCH: usize = 64;

/// `--threads N --batch B`, shared by `generate`, `eval` and `bench`.
#[derive(clap::Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpeedArgs {
    /// Threads: the rows of large matrices (1 MiB of weights or more) are split between them.
    /// Any count gives the same results as one.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Prompt positions per batched-prefill pass, matrix-matrix work (0: one at a time). Any
    /// batch gives the same results as one at a time.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
}

impl Default for SpeedArgs {
    fn default() -> Self {
        Self { threads: 1, batch: DEFAULT_BATCH }
    }
}

/// A rayon pool of `n - 1` threads; the calling thread computes one piece itself.
pub struct Threads {
    pool: ThreadPool,
    n: usize,
}

impl Threads {
    /// `n` threads in all (at least 2; one thread is [`Serial`]).
    pub fn new(n: usize) -> anyhow::Result<Self> {
        if n < 2 {
            bail!("a thread pool needs at least 2 threads, not {n}");
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n - 1)
            .thread_name(|i| format!("mote-{i}"))
            .build()
            .context("cannot start the thread pool")?;
        Ok(Self { pool, n })
    }
}

impl RowSplit for Threads {
    fn split(&self, out: &mut [f32], grain: usize, job: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        // `n` pieces of whole grains, the last one shorter.
        let grain = grain.max(1);
        let per = out.len().div_ceil(grain).div_ceil(self.n) * grain;
        if per == 0 {
            return;
        }
        let mut pieces = out.chunks_mut(per).enumerate();
        let first = pieces.next();
        self.pool.in_place_scope(|s| {
            for (i, piece) in pieces {
                s.spawn(move |_| job(i * per, piece));
            }
            if let Some((_, piece)) = first {
                job(0, piece);
            }
        });
    }
}

/// `--threads`: [`Serial`] for 1, else a pool.
pub fn row_split(threads: usize) -> anyhow::Result<Box<dyn RowSplit>> {
    match threads {
        0 => bail!("--threads 0: give 1 or more"),
        1 => Ok(Box::new(Serial)),
        n => Ok(Box::new(Threads::new(n)?)),
    }
}

/// Storage for a batched-prefill scratch of `batch` positions (none for 0: one position at a
/// time), exactly [`Prefill::bytes_needed`] bytes.
pub fn prefill_storage(hp: &HParams, batch: usize) -> Vec<u8> {
    if batch == 0 {
        return Vec::new();
    }
    vec![0u8; Prefill::bytes_needed(hp, batch)]
}

/// The scratch in `storage` (from [`prefill_storage`]), or `None` for a batch of 0.
pub fn prefill_scratch<'p>(
    hp: &HParams,
    batch: usize,
    storage: &'p mut [u8],
) -> anyhow::Result<Option<Prefill<'p>>> {
    if batch == 0 {
        return Ok(None);
    }
    Ok(Some(Prefill::new(hp, batch, storage)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_output_in_whole_grains() {
        let t = Threads::new(2).unwrap();
        for (len, grain) in [(0, 8), (1, 8), (8, 8), (17, 8), (100, 8), (2304, 768), (7, 1)] {
            let mut out = vec![0.0f32; len];
            let seen = std::sync::Mutex::new(Vec::new());
            t.split(&mut out, grain, &|start, piece| {
                for (i, v) in piece.iter_mut().enumerate() {
                    *v = (start + i) as f32;
                }
                seen.lock().unwrap().push((start, piece.len()));
            });
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32), "{len}/{grain}");
            let mut seen = seen.into_inner().unwrap();
            seen.sort();
            assert!(seen.len() <= 2);
            let last = seen.len().saturating_sub(1);
            assert!(seen[..last].iter().all(|&(_, n)| n % grain == 0), "{seen:?}");
        }
        assert!(Threads::new(1).is_err());
        assert!(row_split(0).is_err());
    }
}

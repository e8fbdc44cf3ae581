//! Byte-pair encoding of one pre-token: start from one part per byte (the token of that byte's
//! GPT-2 character), and repeatedly merge the adjacent pair with the lowest merge rank (the leftmost
//! among equal ranks) until no pair has a merge; the parts' token ids are the result. This is
//! Hugging Face's order of merges (`Word::merge_all`), which for GPT-2's merges is also OpenAI's.
//!
//! With the `mote.tokenizer.*` index a pair of ids gives its rank and merged id by one binary search
//! over integers; without it, ranks are found by scanning the merge strings and merged ids by
//! scanning the token strings, so the word is also kept in GPT-2's mapped form.
//!
//! Letters used in this file: `n` bytes in the pre-token, `p` parts (`p <= n`).

// Hot encode/decode loops over bounded scratch: exempt from the tokenizer's indexing and overflow
// lints (the panic lints still apply) because the BPE scratch arrays are sized for MAX_PRETOKEN_BYTES + 1 parts and every
// position is below the word length, checked against that bound on entry; the `tokenizer` fuzz target exercises them.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use super::bytes::map_bytes;
use super::vocab::Vocab;
use super::{name_bytes, TokenizerError};

/// Longest pre-token, in bytes of UTF-8, that BPE encodes; a longer one is
/// [`TokenizerError::PretokenTooLong`], never split or truncated (either would change the ids).
/// GPT-2's longest token is 128 mapped bytes and words of ordinary text are far shorter; 512 leaves
/// room for long runs of spaces, dashes or letters (URLs, hashes) while the scratch stays 6 KB.
pub const MAX_PRETOKEN_BYTES: usize = 512;

/// Rank of a pair that has no merge.
const NO_MERGE: u32 = u32::MAX;

// Part boundaries are u16 offsets into the mapped word (at most 2 bytes per input byte).
const _: () = assert!(2 * MAX_PRETOKEN_BYTES <= u16::MAX as usize);

/// Working memory for encoding one pre-token (about 6 KB; the caller chooses where it lives).
#[derive(Clone)]
pub struct BpeScratch {
    mapped: [u8; 2 * MAX_PRETOKEN_BYTES], // (byte) the word in GPT-2's mapped UTF-8
    starts: [u16; MAX_PRETOKEN_BYTES + 1], // (p + 1) where each part starts in `mapped`, then the end
    ids: [u32; MAX_PRETOKEN_BYTES],        // (p) each part's token id
    ranks: [u32; MAX_PRETOKEN_BYTES],      // (p - 1) rank of merging part i with part i + 1
}

impl Default for BpeScratch {
    fn default() -> Self {
        Self::new()
    }
}

impl BpeScratch {
    /// Zeroed scratch (a `const fn`, so firmware can keep it in a `static`).
    pub const fn new() -> Self {
        BpeScratch {
            mapped: [0; 2 * MAX_PRETOKEN_BYTES],
            starts: [0; MAX_PRETOKEN_BYTES + 1],
            ids: [0; MAX_PRETOKEN_BYTES],
            ranks: [0; MAX_PRETOKEN_BYTES],
        }
    }

    /// The mapped bytes of parts `i..j`.
    fn parts(&self, i: usize, j: usize) -> &[u8] {
        match (self.starts.get(i), self.starts.get(j)) {
            (Some(&a), Some(&b)) => self.mapped.get(usize::from(a)..usize::from(b)).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The rank of merging parts `i` and `i + 1`.
    #[cfg_attr(feature = "optimize-size", optimize(size))]
    fn rank(&self, vocab: &Vocab<'_>, i: usize) -> u32 {
        let found = if vocab.has_index() {
            match (self.ids.get(i), self.ids.get(i + 1)) {
                (Some(&l), Some(&r)) => vocab.pair(l, r).map(|(rank, _)| rank),
                _ => None,
            }
        } else {
            vocab.merge_rank(self.parts(i, i + 1), self.parts(i + 1, i + 2))
        };
        found.unwrap_or(NO_MERGE)
    }

    /// The token id of parts `i` and `i + 1` merged.
    fn merged(&self, vocab: &Vocab<'_>, i: usize) -> Result<u32, TokenizerError> {
        let found = if vocab.has_index() {
            match (self.ids.get(i), self.ids.get(i + 1)) {
                (Some(&l), Some(&r)) => vocab.pair(l, r).map(|(_, id)| id),
                _ => None,
            }
        } else {
            vocab.token_id(self.parts(i, i + 2))
        };
        found.ok_or_else(|| TokenizerError::NoToken { token: name_bytes(self.parts(i, i + 2)) })
    }
}

/// Encodes one pre-token `word`, calling `emit` with each token id in order.
pub fn encode_word<E>(
    vocab: &Vocab<'_>,
    word: &str,
    s: &mut BpeScratch,
    emit: &mut E,
) -> Result<(), TokenizerError>
where
    E: FnMut(u32) -> Result<(), TokenizerError>,
{
    let n = word.len();
    if n > MAX_PRETOKEN_BYTES {
        return Err(TokenizerError::PretokenTooLong { len: n, max: MAX_PRETOKEN_BYTES });
    }
    // One part per byte.
    let mut end = 0;
    for (i, &b) in word.as_bytes().iter().enumerate() {
        s.starts[i] = end as u16;
        end = map_bytes(&[b], &mut s.mapped, end)
            .ok_or_else(|| TokenizerError::PretokenTooLong { len: n, max: MAX_PRETOKEN_BYTES })?;
        s.ids[i] = match vocab.byte_id(b) {
            Some(id) => id,
            None => {
                let token = name_bytes(s.mapped.get(usize::from(s.starts[i])..end).unwrap_or(&[]));
                return Err(TokenizerError::NoToken { token });
            }
        };
    }
    s.starts[n] = end as u16;
    let mut p = n;
    for i in 0..p.saturating_sub(1) {
        s.ranks[i] = s.rank(vocab, i);
    }
    // Merge the lowest-ranked pair (leftmost on ties) until none is left.
    while p > 1 {
        let Some((i, &rank)) = s.ranks[..p - 1].iter().enumerate().min_by_key(|&(i, &r)| (r, i))
        else {
            break;
        };
        if rank == NO_MERGE {
            break;
        }
        // Parts i and i + 1 become one: drop the boundary between them and the pair's rank.
        s.ids[i] = s.merged(vocab, i)?;
        s.ids.copy_within(i + 2..p, i + 1);
        s.starts.copy_within(i + 2..=p, i + 1);
        s.ranks.copy_within(i + 1..p - 1, i);
        p -= 1;
        if i > 0 {
            s.ranks[i - 1] = s.rank(vocab, i - 1);
        }
        if i + 1 < p {
            s.ranks[i] = s.rank(vocab, i);
        }
    }
    for &id in &s.ids[..p] {
        emit(id)?;
    }
    Ok(())
}

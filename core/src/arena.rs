//! Carving typed buffers out of storage the caller provides, and counting the bytes they take.
//!
//! The run state and the prefill scratch are sized by `const fn`s of the hyper-parameters (so the
//! firmware can size a `static` at build time), then cut from one `&mut [u8]` in the same order.
//! Buffers are carved 4-byte ones first, so that every f32 lands aligned once the start is.

use core::mem::{align_of, size_of};

/// Bytes that may be skipped at the start of the storage to align the f32 buffers.
pub const ALIGN_SLACK: usize = align_of::<f32>() - 1;

/// Bytes of `n` values of `T`, saturating rather than overflowing.
pub(crate) const fn bytes_of<T>(n: usize) -> usize {
    n.saturating_mul(size_of::<T>())
}

/// The part of the storage not yet carved.
pub(crate) struct Arena<'s> {
    rest: &'s mut [u8],
}

impl<'s> Arena<'s> {
    /// `storage` from its first f32-aligned byte (at most [`ALIGN_SLACK`] skipped).
    pub(crate) fn new(storage: &'s mut [u8]) -> Self {
        let skip = storage.as_ptr().align_offset(align_of::<f32>()).min(ALIGN_SLACK);
        let skip = skip.min(storage.len());
        Self { rest: &mut storage[skip..] }
    }

    /// The next `n` values of `T`, or `None` if the storage is too short or misaligned for them.
    pub(crate) fn take<T: bytemuck::Pod>(&mut self, n: usize) -> Option<&'s mut [T]> {
        let all = core::mem::take(&mut self.rest);
        let at = bytes_of::<T>(n);
        if at > all.len() {
            return None;
        }
        let (head, tail) = all.split_at_mut(at);
        self.rest = tail;
        bytemuck::try_cast_slice_mut(head).ok()
    }
}

//! Embedding a file in flash with the alignment its reader needs.
//!
//! `include_bytes!` gives a `&[u8; N]` with alignment 1, but the GGUF reader views tensor data in
//! place, and GGUF aligns tensor data to [`ALIGN`] bytes from the start of the file: the file must
//! start on such a boundary too.

/// GGUF's default `general.alignment`.
pub const ALIGN: usize = 32;

/// Zero bytes of alignment, then the bytes: `#[repr(C)]` puts the bytes at the struct's start.
#[repr(C, align(32))]
pub struct Aligned<B: ?Sized> {
    /// The file's bytes, starting on an [`ALIGN`]-byte boundary.
    pub bytes: B,
}

const _: () = assert!(core::mem::align_of::<Aligned<[u8; 0]>>() == ALIGN);

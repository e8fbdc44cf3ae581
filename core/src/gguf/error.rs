//! Why a blob is not a GGUF file mote can read: one variant per check, carrying the offset and the
//! bad value.

use core::fmt;

use super::{
    ggml_type_name, Name, ValueType, GGML_MAX_DIMS, GGML_MAX_NAME, GGUF_MAGIC, GGUF_MAX_ALIGNMENT,
    GGUF_VERSION, RUNNABLE_TYPES_ADVICE,
};

/// Why a blob is not a GGUF file mote can read, or why a look-up failed. Offsets are byte offsets in
/// the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GgufError {
    /// The blob ends before a field: `needed` bytes at `offset`, only `available` left.
    Truncated {
        /// Where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the blob from `offset`.
        available: usize,
    },
    /// The first four bytes are not `GGUF`.
    BadMagic {
        /// What was found (little-endian u32).
        found: u32,
    },
    /// A version other than 3.
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
    },
    /// A count (tensors, metadata pairs, array elements) that cannot fit in the bytes that remain.
    CountTooLarge {
        /// What is counted.
        what: &'static str,
        /// The count in the file.
        count: u64,
        /// Where the count was read.
        offset: usize,
    },
    /// A metadata value type number that GGUF does not define.
    InvalidValueType {
        /// The number in the file.
        found: u32,
        /// Where it was read.
        offset: usize,
    },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`].
    ArrayTooDeep {
        /// Where the inner array starts.
        offset: usize,
    },
    /// A string that is not UTF-8.
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
    },
    /// A bool that is neither 0 nor 1.
    InvalidBool {
        /// The byte found.
        found: u8,
        /// Where it was read.
        offset: usize,
    },
    /// The same metadata key twice.
    DuplicateKey {
        /// The key.
        key: Name,
    },
    /// `general.alignment` is not a u32 power of two in `1..=GGUF_MAX_ALIGNMENT`.
    BadAlignment {
        /// The value found (0 when it has the wrong type).
        value: u64,
    },
    /// A tensor name that is empty or longer than ggml allows.
    BadTensorName {
        /// Where the name starts.
        offset: usize,
        /// Its length in bytes.
        len: u64,
    },
    /// The same tensor name twice.
    DuplicateTensor {
        /// The name.
        name: Name,
    },
    /// A tensor with 0 or more than [`GGML_MAX_DIMS`] dimensions.
    BadDimCount {
        /// The tensor.
        name: Name,
        /// The dimension count in the file.
        n_dims: u32,
    },
    /// A zero dimension, or dimensions whose product overflows.
    BadShape {
        /// The tensor.
        name: Name,
        /// Its dimensions (unused ones are 1).
        dims: [u64; GGML_MAX_DIMS],
    },
    /// A tensor type number that ggml does not define: the data cannot be sized.
    UnknownTensorType {
        /// The tensor.
        name: Name,
        /// The number in the file.
        ty: u32,
    },
    /// A tensor type ggml defines but mote cannot compute with (reported when a model is loaded;
    /// the file still parses, so it can be inspected).
    UnsupportedTensorType {
        /// The tensor.
        name: Name,
        /// ggml's type number.
        ty: u32,
    },
    /// A quantized tensor whose rows are not whole blocks.
    RowNotBlocks {
        /// The tensor.
        name: Name,
        /// Its row length (`ne[0]`).
        row_len: u64,
        /// The type's block length.
        block_len: usize,
    },
    /// A tensor's data offset is not where the running sum of the earlier tensors puts it.
    BadDataOffset {
        /// The tensor.
        name: Name,
        /// The offset in the file (relative to the data section).
        offset: u64,
        /// The offset expected.
        expected: u64,
    },
    /// A tensor's data runs past the end of the blob.
    DataOutOfBounds {
        /// The tensor.
        name: Name,
        /// The absolute end of its data.
        end: u64,
        /// The blob's length.
        len: usize,
    },
    /// A metadata key that is not there.
    MissingKey {
        /// The key.
        key: Name,
    },
    /// A metadata key whose value has another type.
    WrongType {
        /// The key.
        key: Name,
        /// The type asked for.
        expected: ValueType,
        /// The type in the file.
        found: ValueType,
    },
    /// A tensor that is not there.
    MissingTensor {
        /// The name looked for.
        name: Name,
    },
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GgufError::*;
        match self {
            Truncated { offset, needed, available } => write!(
                f,
                "file is truncated: {needed} bytes needed at offset {offset}, {available} available"
            ),
            BadMagic { found } => {
                write!(f, "not a GGUF file: magic 0x{found:08x}, expected 0x{GGUF_MAGIC:08x} (\"GGUF\")")
            }
            UnsupportedVersion { found } => {
                write!(f, "unsupported GGUF version {found} (mote reads version {GGUF_VERSION})")
            }
            CountTooLarge { what, count, offset } => write!(
                f,
                "{what} count {count} at offset {offset} is larger than the rest of the file can hold"
            ),
            InvalidValueType { found, offset } => {
                write!(f, "invalid metadata value type {found} at offset {offset}")
            }
            ArrayTooDeep { offset } => write!(f, "arrays nested too deeply at offset {offset}"),
            InvalidUtf8 { offset } => write!(f, "string at offset {offset} is not valid UTF-8"),
            InvalidBool { found, offset } => {
                write!(f, "bool at offset {offset} has value {found}, expected 0 or 1")
            }
            DuplicateKey { key } => write!(f, "metadata key \"{key}\" appears twice"),
            BadAlignment { value } => write!(
                f,
                "general.alignment {value} is not a u32 power of two up to {GGUF_MAX_ALIGNMENT}"
            ),
            BadTensorName { offset, len } => {
                write!(f, "tensor name at offset {offset} has length {len} (1..={GGML_MAX_NAME})")
            }
            DuplicateTensor { name } => write!(f, "tensor \"{name}\" appears twice"),
            BadDimCount { name, n_dims } => {
                write!(f, "tensor \"{name}\" has {n_dims} dimensions (1..={GGML_MAX_DIMS})")
            }
            BadShape { name, dims } => {
                write!(f, "tensor \"{name}\" has shape {dims:?}: a zero dimension or too many elements")
            }
            UnknownTensorType { name, ty } => write!(
                f,
                "tensor \"{name}\" has type number {ty}, which ggml does not define: the file is \
                 damaged, or newer than mote"
            ),
            UnsupportedTensorType { name, ty } => write!(
                f,
                "tensor \"{name}\" has type {} ({ty}), which mote cannot run; {RUNNABLE_TYPES_ADVICE}",
                ggml_type_name(*ty)
            ),
            RowNotBlocks { name, row_len, block_len } => write!(
                f,
                "tensor \"{name}\" has rows of {row_len} elements, not a multiple of its block of {block_len}"
            ),
            BadDataOffset { name, offset, expected } => write!(
                f,
                "tensor \"{name}\" data offset {offset}, expected {expected} (tensors must follow each other in order, aligned)"
            ),
            DataOutOfBounds { name, end, len } => {
                write!(f, "tensor \"{name}\" data ends at byte {end}, past the end of the file ({len})")
            }
            MissingKey { key } => write!(f, "metadata key \"{key}\" is missing"),
            WrongType { key, expected, found } => {
                write!(f, "metadata key \"{key}\" has type {found:?}, expected {expected:?}")
            }
            MissingTensor { name } => write!(f, "tensor \"{name}\" is missing"),
        }
    }
}

impl core::error::Error for GgufError {}

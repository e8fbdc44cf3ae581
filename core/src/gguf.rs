//! A zero-copy GGUF (version 3) reader: everything is a view into the borrowed blob.
//!
//! [`Gguf::parse`] walks the whole header once and checks every count, length, type, shape and data
//! range against the bytes that are really there, so that every later look-up works on a blob known
//! to be well formed. Nothing is copied and nothing is allocated: look-ups walk the header again,
//! which is cheap next to a forward pass and costs no RAM.
//!
//! Layout (little-endian): magic `GGUF`, version (u32), tensor count (u64), metadata count (u64),
//! metadata key/value pairs, tensor infos (name, dims, type, offset), padding to `general.alignment`,
//! then the tensor data. Tensor `i`'s offset must be the running sum of the earlier tensors' sizes,
//! each padded to the alignment, as ggml writes and llama.cpp demands; this also rules out overlaps.

// Reads bytes from outside: no unchecked indexing, no arithmetic that can overflow.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::arithmetic_side_effects))]

use core::fmt;

/// `GGUF` read as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// The only version read (llama.cpp writes 3; 1 and 2 had 32-bit counts and are obsolete).
pub const GGUF_VERSION: u32 = 3;
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const GGUF_DEFAULT_ALIGNMENT: usize = 32;
/// The largest alignment accepted: anything larger only wastes flash, and bounds padding arithmetic.
pub const GGUF_MAX_ALIGNMENT: usize = 1 << 16;
/// ggml tensors have at most four dimensions.
pub const GGML_MAX_DIMS: usize = 4;
/// Longest tensor name ggml allows (`GGML_MAX_NAME` minus the terminating NUL).
pub const GGML_MAX_NAME: usize = 63;
/// Bounded copy of a key or tensor name kept in errors (longer names are cut).
pub const ERROR_NAME_LEN: usize = 64;
/// Nesting depth of arrays of arrays that is accepted; GPT-2 files use none, this bounds recursion.
pub const MAX_ARRAY_DEPTH: u32 = 2;

/// A key or tensor name copied into an error (names point into the blob, errors must not borrow it).
pub type Name = heapless::String<ERROR_NAME_LEN>;

/// `s` as a [`Name`], cut at [`ERROR_NAME_LEN`] bytes (on a character boundary).
pub(crate) fn name_of(s: &str) -> Name {
    let mut n = Name::new();
    for c in s.chars() {
        if n.push(c).is_err() {
            break;
        }
    }
    n
}

/// Metadata value types (`gguf_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[allow(missing_docs)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    fn from_u32(v: u32) -> Option<Self> {
        use ValueType::*;
        Some(match v {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The type's number in the file.
    pub fn to_u32(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// Size of one value of a fixed-size type; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The smallest number of bytes one value of this type takes (bounds counts read from a file).
    fn min_size(self) -> usize {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }
}

/// Tensor element types mote reads (`ggml_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// Blocks of 32 `i8` with one f16 scale (34 bytes).
    Q8_0,
}

impl GgmlType {
    /// From ggml's number; `None` for the types mote does not read.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            8 => Some(Self::Q8_0),
            _ => None,
        }
    }

    /// ggml's number for the type.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 8,
        }
    }

    /// Elements per block.
    pub fn block_len(self) -> usize {
        match self {
            Self::F32 | Self::F16 => 1,
            Self::Q8_0 => crate::quant::QK8_0,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
            Self::Q8_0 => crate::quant::Q8_0_BLOCK_BYTES,
        }
    }

    /// ggml's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Q8_0 => "Q8_0",
        }
    }

    /// Bytes taken by `n` elements, or `None` if `n` is not a whole number of blocks or overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let bl = self.block_len() as u64;
        if n.checked_rem(bl)? != 0 {
            return None;
        }
        n.checked_div(bl)?.checked_mul(self.block_bytes() as u64)
    }
}

/// Every tensor type ggml defines, with its block layout: (number, name, elements per block, bytes per
/// block), as ggml's `type_traits` and gguf-py's `GGML_QUANT_SIZES` give them. The reader sizes any of
/// these, so that a file holding types mote cannot run still parses and can be inspected.
const GGML_TYPES: &[(u32, &str, u16, u16)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

/// Name of a ggml type number, including those mote does not run (for messages); `"unknown"` for a
/// number ggml does not define.
pub fn ggml_type_name(v: u32) -> &'static str {
    TensorType::from_u32(v).map_or("unknown", TensorType::name)
}

/// A tensor's element type as the file states it: any type ggml defines, whether or not mote runs
/// it. [`TensorType::runnable`] says which [`GgmlType`] it is when mote can compute with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TensorType {
    number: u32,
    name: &'static str,
    block_len: u16,
    block_bytes: u16,
}

impl TensorType {
    /// From ggml's number; `None` for a number ggml does not define.
    pub fn from_u32(v: u32) -> Option<Self> {
        GGML_TYPES.iter().find(|t| t.0 == v).map(|&(number, name, block_len, block_bytes)| Self {
            number,
            name,
            block_len,
            block_bytes,
        })
    }

    /// ggml's number for the type.
    pub fn to_u32(self) -> u32 {
        self.number
    }

    /// ggml's name for the type (`Q4_K`).
    pub fn name(self) -> &'static str {
        self.name
    }

    /// Elements per block.
    pub fn block_len(self) -> usize {
        usize::from(self.block_len)
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        usize::from(self.block_bytes)
    }

    /// Bytes taken by `n` elements, or `None` if `n` is not a whole number of blocks or overflows.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let bl = u64::from(self.block_len);
        if n.checked_rem(bl)? != 0 {
            return None;
        }
        n.checked_div(bl)?.checked_mul(u64::from(self.block_bytes))
    }

    /// The type as one mote computes with, or `None` if mote cannot run it.
    pub fn runnable(self) -> Option<GgmlType> {
        GgmlType::from_u32(self.number)
    }
}

impl From<GgmlType> for TensorType {
    fn from(t: GgmlType) -> Self {
        Self {
            number: t.to_u32(),
            name: t.name(),
            block_len: t.block_len() as u16,
            block_bytes: t.block_bytes() as u16,
        }
    }
}

impl PartialEq<GgmlType> for TensorType {
    fn eq(&self, other: &GgmlType) -> bool {
        self.number == other.to_u32()
    }
}

/// What to do with a model whose tensors mote cannot run: the two routes to Q8_0.
pub const RUNNABLE_TYPES_ADVICE: &str = "mote runs F32, F16 and Q8_0: convert the Hugging Face \
     checkpoint with `mote convert --type q8_0`, or requantize with llama.cpp's `llama-quantize` to Q8_0";

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

/// A bounds-checked little-endian cursor over the blob.
#[derive(Clone, Copy)]
struct Reader<'a> {
    blob: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.blob.len().saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        let truncated =
            || GgufError::Truncated { offset: self.pos, needed: n, available: self.remaining() };
        let len = usize::try_from(n).map_err(|_| truncated())?;
        let end = self.pos.checked_add(len).ok_or_else(truncated)?;
        let out = self.blob.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let b = self.bytes(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, GgufError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count of items each at least `min_size` bytes, checked against what remains.
    fn count(&mut self, what: &'static str, min_size: usize) -> Result<u64, GgufError> {
        let offset = self.pos;
        let count = self.u64()?;
        let fits = count.checked_mul(min_size as u64).is_some_and(|b| b <= self.remaining() as u64);
        if !fits {
            return Err(GgufError::CountTooLarge { what, count, offset });
        }
        Ok(count)
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes.
    fn str(&mut self) -> Result<&'a str, GgufError> {
        let len = self.u64()?;
        let offset = self.pos;
        let b = self.bytes(len)?;
        core::str::from_utf8(b).map_err(|_| GgufError::InvalidUtf8 { offset })
    }

    fn value_type(&mut self) -> Result<ValueType, GgufError> {
        let offset = self.pos;
        let v = self.u32()?;
        ValueType::from_u32(v).ok_or(GgufError::InvalidValueType { found: v, offset })
    }

    /// Reads one value of type `ty`, checking it whole (strings are UTF-8, bools 0 or 1, arrays
    /// element by element).
    fn value(&mut self, ty: ValueType, depth: u32) -> Result<Value<'a>, GgufError> {
        use ValueType as T;
        Ok(match ty {
            T::U8 => Value::U8(self.u8()?),
            T::I8 => Value::I8(self.u8()? as i8),
            T::U16 => Value::U16(self.u16()?),
            T::I16 => Value::I16(self.u16()? as i16),
            T::U32 => Value::U32(self.u32()?),
            T::I32 => Value::I32(self.u32()? as i32),
            T::F32 => Value::F32(f32::from_bits(self.u32()?)),
            T::U64 => Value::U64(self.u64()?),
            T::I64 => Value::I64(self.u64()? as i64),
            T::F64 => Value::F64(f64::from_bits(self.u64()?)),
            T::Bool => {
                let offset = self.pos;
                match self.u8()? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    found => return Err(GgufError::InvalidBool { found, offset }),
                }
            }
            T::String => Value::Str(self.str()?),
            T::Array => {
                let start = self.pos;
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::ArrayTooDeep { offset: start });
                }
                let elem = self.value_type()?;
                let len = self.count("array element", elem.min_size())?;
                let data_start = self.pos;
                match elem.fixed_size() {
                    // Fixed-size elements: check the span, and the bools' values.
                    Some(size) => {
                        // `count` checked `len` against the bytes left, so this cannot saturate.
                        let data = self.bytes(len.saturating_mul(size as u64))?;
                        if elem == T::Bool {
                            if let Some((i, &found)) = data.iter().enumerate().find(|(_, &b)| b > 1)
                            {
                                return Err(GgufError::InvalidBool {
                                    found,
                                    offset: data_start.saturating_add(i),
                                });
                            }
                        }
                    }
                    None => {
                        for _ in 0..len {
                            self.value(elem, depth.saturating_add(1))?;
                        }
                    }
                }
                Value::Array(Array {
                    elem,
                    len: len as usize,
                    data: self.blob.get(data_start..self.pos).unwrap_or(&[]),
                })
            }
        })
    }
}

/// A metadata value, borrowed from the blob.
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(&'a str),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        use ValueType as T;
        match self {
            Value::U8(_) => T::U8,
            Value::I8(_) => T::I8,
            Value::U16(_) => T::U16,
            Value::I16(_) => T::I16,
            Value::U32(_) => T::U32,
            Value::I32(_) => T::I32,
            Value::F32(_) => T::F32,
            Value::Bool(_) => T::Bool,
            Value::Str(_) => T::String,
            Value::Array(_) => T::Array,
            Value::U64(_) => T::U64,
            Value::I64(_) => T::I64,
            Value::F64(_) => T::F64,
        }
    }

    /// Any integer value that is non-negative and fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// An array value: `len` elements of type `elem`, already checked by [`Gguf::parse`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    elem: ValueType,
    len: usize,
    /// The elements' bytes (after the element type and count).
    data: &'a [u8],
}

impl<'a> Array<'a> {
    /// Element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw bytes of the elements, as stored (for fixed-size elements: `len * size` bytes,
    /// little-endian).
    pub fn raw(&self) -> &'a [u8] {
        self.data
    }

    /// The elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter { r: Reader { blob: self.data, pos: 0 }, elem: self.elem, left: self.len }
    }

    /// Element `i`: constant time for fixed-size elements, a walk for strings and arrays.
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        if i >= self.len {
            return None;
        }
        match self.elem.fixed_size() {
            Some(size) => {
                let mut r = Reader { blob: self.data, pos: i.checked_mul(size)? };
                r.value(self.elem, 0).ok()
            }
            None => self.iter().nth(i),
        }
    }

    /// The elements as strings, if this is an array of strings.
    pub fn strings(&self) -> Option<StrIter<'a>> {
        (self.elem == ValueType::String)
            .then_some(StrIter { r: Reader { blob: self.data, pos: 0 }, left: self.len })
    }
}

/// Iterator over an [`Array`]'s elements.
#[derive(Clone)]
pub struct ArrayIter<'a> {
    r: Reader<'a>,
    elem: ValueType,
    left: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left = self.left.saturating_sub(1);
        // The array was checked whole at parse time, so this cannot fail; stop if it somehow does.
        match self.r.value(self.elem, 1) {
            Ok(v) => Some(v),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Iterator over an array of strings.
#[derive(Clone)]
pub struct StrIter<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> StrIter<'a> {
    /// Byte offset of the next string's length field within the array data.
    pub fn position(&self) -> usize {
        self.r.pos
    }
}

impl<'a> Iterator for StrIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.left == 0 {
            return None;
        }
        self.left = self.left.saturating_sub(1);
        match self.r.str() {
            Ok(s) => Some(s),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// One tensor: its name, shape, type and data, a view into the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// The tensor's name (`blk.0.attn_qkv.weight`).
    pub name: &'a str,
    /// Number of dimensions in use (1..=4).
    pub n_dims: usize,
    /// ggml's `ne`: `dims[0]` is the row length (fastest varying); unused dimensions are 1.
    pub dims: [u64; GGML_MAX_DIMS],
    /// Element type, as the file states it (possibly one mote cannot run).
    pub ty: TensorType,
    /// Offset of the data relative to the data section.
    pub offset: u64,
    /// The data, exactly `size_bytes` long.
    pub data: &'a [u8],
}

impl<'a> TensorInfo<'a> {
    /// Number of elements (checked at parse time not to overflow).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Row length (`ne[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims[0]
    }

    /// Number of rows (the product of all dimensions but the first).
    pub fn n_rows(&self) -> u64 {
        self.dims[1..].iter().product()
    }

    /// The shape, as many dimensions as are in use.
    pub fn shape(&self) -> &[u64] {
        self.dims.get(..self.n_dims).unwrap_or(&self.dims)
    }
}

/// A parsed GGUF blob. Cheap to copy: it is a few offsets and the borrowed blob.
#[derive(Clone, Copy, Debug)]
pub struct Gguf<'a> {
    blob: &'a [u8],
    n_tensors: usize,
    n_kv: usize,
    kv_start: usize,
    tensors_start: usize,
    data_start: usize,
    alignment: usize,
}

impl<'a> Gguf<'a> {
    /// Parses and checks the whole header of `blob`. On success every metadata value and every
    /// tensor's data range is known to be inside the blob and well formed.
    pub fn parse(blob: &'a [u8]) -> Result<Self, GgufError> {
        let mut r = Reader { blob, pos: 0 };
        let magic = r.u32()?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = r.u32()?;
        if version != GGUF_VERSION {
            return Err(GgufError::UnsupportedVersion { found: version });
        }
        // Each tensor info takes at least 8 (name length) + 1 (name) + 4 + 8 + 4 + 8 bytes, each
        // metadata pair at least 8 + 1 + 4 + 1.
        let n_tensors = r.count("tensor", 33)?;
        let n_kv = r.count("metadata", 14)?;
        let kv_start = r.pos;

        let mut alignment = GGUF_DEFAULT_ALIGNMENT;
        for _ in 0..n_kv {
            let key = r.str()?;
            let ty = r.value_type()?;
            let value = r.value(ty, 0)?;
            if key == "general.alignment" {
                alignment = match value {
                    Value::U32(a) if a != 0 && a.is_power_of_two() => a as usize,
                    Value::U32(a) => return Err(GgufError::BadAlignment { value: a.into() }),
                    _ => return Err(GgufError::BadAlignment { value: 0 }),
                };
                if alignment > GGUF_MAX_ALIGNMENT {
                    return Err(GgufError::BadAlignment { value: alignment as u64 });
                }
            }
        }
        let tensors_start = r.pos;

        let mut gguf = Gguf {
            blob,
            n_tensors: n_tensors as usize,
            n_kv: n_kv as usize,
            kv_start,
            tensors_start,
            data_start: 0,
            alignment,
        };

        // Tensor infos: shapes and types first; data ranges need the data section's start, which
        // follows the last info.
        let mut expected_offset = 0u64;
        for _ in 0..n_tensors {
            let raw = read_tensor_info(&mut r)?;
            let size = raw.size;
            if raw.offset != expected_offset {
                return Err(GgufError::BadDataOffset {
                    name: name_of(raw.name),
                    offset: raw.offset,
                    expected: expected_offset,
                });
            }
            expected_offset = align_up(expected_offset.saturating_add(size), alignment as u64);
        }
        let data_start = align_up(r.pos as u64, alignment as u64);
        // Every tensor's data must be inside the blob. The last one decides, since they follow
        // each other in order; check each anyway to name the first that is out.
        gguf.data_start = usize::try_from(data_start).unwrap_or(usize::MAX);
        let mut r = Reader { blob, pos: tensors_start };
        for _ in 0..n_tensors {
            let raw = read_tensor_info(&mut r)?;
            let end = data_start.saturating_add(raw.offset).saturating_add(raw.size);
            if end > blob.len() as u64 {
                return Err(GgufError::DataOutOfBounds {
                    name: name_of(raw.name),
                    end,
                    len: blob.len(),
                });
            }
        }
        gguf.check_unique()?;
        Ok(gguf)
    }

    /// Rejects duplicate keys and tensor names. Quadratic, but GPT-2 files have a few dozen keys
    /// and at most a few hundred tensors, and it needs no memory.
    fn check_unique(&self) -> Result<(), GgufError> {
        for (i, (key, _)) in self.metadata().enumerate() {
            if self.metadata().take(i).any(|(k, _)| k == key) {
                return Err(GgufError::DuplicateKey { key: name_of(key) });
            }
        }
        for (i, t) in self.tensors().enumerate() {
            if self.tensors().take(i).any(|u| u.name == t.name) {
                return Err(GgufError::DuplicateTensor { name: name_of(t.name) });
            }
        }
        Ok(())
    }

    /// The whole blob.
    pub fn blob(&self) -> &'a [u8] {
        self.blob
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Offset of the data section in the blob.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// Number of tensors.
    pub fn n_tensors(&self) -> usize {
        self.n_tensors
    }

    /// Number of metadata pairs.
    pub fn n_metadata(&self) -> usize {
        self.n_kv
    }

    /// All metadata pairs, in file order.
    pub fn metadata(&self) -> MetadataIter<'a> {
        MetadataIter { r: Reader { blob: self.blob, pos: self.kv_start }, left: self.n_kv }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value of `key`, which must be present.
    pub fn require(&self, key: &str) -> Result<Value<'a>, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey { key: name_of(key) })
    }

    fn wrong(key: &str, expected: ValueType, v: &Value<'_>) -> GgufError {
        GgufError::WrongType { key: name_of(key), expected, found: v.value_type() }
    }

    /// A non-negative integer value of any integer type (llama.cpp's files use u32; others use u64
    /// or i32).
    pub fn get_uint(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| Self::wrong(key, ValueType::U32, &v))
    }

    /// An f32 value.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        match self.require(key)? {
            Value::F32(x) => Ok(x),
            v => Err(Self::wrong(key, ValueType::F32, &v)),
        }
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Result<&'a str, GgufError> {
        match self.require(key)? {
            Value::Str(s) => Ok(s),
            v => Err(Self::wrong(key, ValueType::String, &v)),
        }
    }

    /// An array value.
    pub fn get_array(&self, key: &str) -> Result<Array<'a>, GgufError> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(Self::wrong(key, ValueType::Array, &v)),
        }
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> TensorIter<'a> {
        TensorIter {
            r: Reader { blob: self.blob, pos: self.tensors_start },
            left: self.n_tensors,
            data_start: self.data_start,
        }
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().find(|t| t.name == name)
    }

    /// The tensor called `name`, which must be present.
    pub fn require_tensor(&self, name: &str) -> Result<TensorInfo<'a>, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor { name: name_of(name) })
    }
}

/// Iterator over metadata pairs.
#[derive(Clone)]
pub struct MetadataIter<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for MetadataIter<'a> {
    type Item = (&'a str, Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left = self.left.saturating_sub(1);
        let pair = (|| {
            let key = self.r.str()?;
            let ty = self.r.value_type()?;
            Ok::<_, GgufError>((key, self.r.value(ty, 0)?))
        })();
        // Checked at parse time; stop rather than panic if it somehow fails.
        pair.map_err(|_| self.left = 0).ok()
    }
}

/// Iterator over tensor infos.
#[derive(Clone)]
pub struct TensorIter<'a> {
    r: Reader<'a>,
    left: usize,
    data_start: usize,
}

impl<'a> Iterator for TensorIter<'a> {
    type Item = TensorInfo<'a>;
    fn next(&mut self) -> Option<TensorInfo<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left = self.left.saturating_sub(1);
        let t = (|| {
            let raw = read_tensor_info(&mut self.r).ok()?;
            let start = usize::try_from(raw.offset).ok()?.checked_add(self.data_start)?;
            let end = start.checked_add(usize::try_from(raw.size).ok()?)?;
            let data = self.r.blob.get(start..end)?;
            Some(TensorInfo {
                name: raw.name,
                n_dims: raw.n_dims,
                dims: raw.dims,
                ty: raw.ty,
                offset: raw.offset,
                data,
            })
        })();
        if t.is_none() {
            self.left = 0;
        }
        t
    }
}

struct RawTensorInfo<'a> {
    name: &'a str,
    n_dims: usize,
    dims: [u64; GGML_MAX_DIMS],
    ty: TensorType,
    offset: u64,
    size: u64,
}

/// Reads and checks one tensor info (everything but where its data is).
fn read_tensor_info<'a>(r: &mut Reader<'a>) -> Result<RawTensorInfo<'a>, GgufError> {
    let name_offset = r.pos;
    let mut peek = *r;
    let name_len = peek.u64()?;
    if name_len == 0 || name_len > GGML_MAX_NAME as u64 {
        return Err(GgufError::BadTensorName { offset: name_offset, len: name_len });
    }
    let name = r.str()?;
    let n_dims = r.u32()?;
    if n_dims == 0 || n_dims as usize > GGML_MAX_DIMS {
        return Err(GgufError::BadDimCount { name: name_of(name), n_dims });
    }
    let mut dims = [1u64; GGML_MAX_DIMS];
    for d in dims.iter_mut().take(n_dims as usize) {
        *d = r.u64()?;
    }
    let bad_shape = || GgufError::BadShape { name: name_of(name), dims };
    if dims.contains(&0) {
        return Err(bad_shape());
    }
    // The element count must fit in i64 as ggml requires; the byte size is checked against the
    // blob later.
    let n = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(bad_shape)?;
    let ty_raw = r.u32()?;
    let ty = TensorType::from_u32(ty_raw)
        .ok_or(GgufError::UnknownTensorType { name: name_of(name), ty: ty_raw })?;
    if dims[0].checked_rem(ty.block_len() as u64) != Some(0) {
        return Err(GgufError::RowNotBlocks {
            name: name_of(name),
            row_len: dims[0],
            block_len: ty.block_len(),
        });
    }
    let size = ty.bytes_for(n).ok_or_else(bad_shape)?;
    let offset = r.u64()?;
    Ok(RawTensorInfo { name, n_dims: n_dims as usize, dims, ty, offset, size })
}

fn align_up(x: u64, a: u64) -> u64 {
    match x.checked_rem(a) {
        None | Some(0) => x,
        Some(rem) => x.saturating_add(a.saturating_sub(rem)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds small GGUF files for the tests (the real writer lives in the host crate).
    struct W(Vec<u8>);
    impl W {
        fn new(n_tensors: u64, n_kv: u64) -> Self {
            let mut w = W(Vec::new());
            w.u32(GGUF_MAGIC);
            w.u32(3);
            w.u64(n_tensors);
            w.u64(n_kv);
            w
        }
        fn u32(&mut self, v: u32) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        fn u64(&mut self, v: u64) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        fn str(&mut self, s: &str) {
            self.u64(s.len() as u64);
            self.0.extend_from_slice(s.as_bytes());
        }
        fn kv_u32(&mut self, k: &str, v: u32) {
            self.str(k);
            self.u32(4);
            self.u32(v);
        }
        fn kv_str(&mut self, k: &str, v: &str) {
            self.str(k);
            self.u32(8);
            self.str(v);
        }
        fn kv_strs(&mut self, k: &str, v: &[&str]) {
            self.str(k);
            self.u32(9);
            self.u32(8);
            self.u64(v.len() as u64);
            for s in v {
                self.str(s);
            }
        }
        fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) {
            self.str(name);
            self.u32(dims.len() as u32);
            for &d in dims {
                self.u64(d);
            }
            self.u32(ty);
            self.u64(offset);
        }
        fn pad(&mut self, a: usize) {
            while self.0.len() % a != 0 {
                self.0.push(0);
            }
        }
    }

    /// Two F32 tensors (3 and 2x4 elements), some metadata.
    fn sample() -> Vec<u8> {
        let mut w = W::new(2, 3);
        w.kv_str("general.architecture", "gpt2");
        w.kv_u32("gpt2.block_count", 2);
        w.kv_strs("tokenizer.ggml.tokens", &["a", "b", "Ġc"]);
        w.tensor("bias", &[3], 0, 0);
        w.tensor("weight", &[4, 2], 0, 32);
        w.pad(32);
        for i in 0..3 {
            w.0.extend_from_slice(&(i as f32).to_le_bytes());
        }
        w.pad(32);
        for i in 0..8 {
            w.0.extend_from_slice(&(10.0 + i as f32).to_le_bytes());
        }
        w.0
    }

    #[test]
    fn reads_metadata_and_tensors() {
        let blob = sample();
        let g = Gguf::parse(&blob).unwrap();
        assert_eq!(g.get_str("general.architecture").unwrap(), "gpt2");
        assert_eq!(g.get_uint("gpt2.block_count").unwrap(), 2);
        let toks = g.get_array("tokenizer.ggml.tokens").unwrap();
        assert_eq!(toks.len(), 3);
        assert_eq!(toks.strings().unwrap().collect::<Vec<_>>(), ["a", "b", "Ġc"]);
        assert_eq!(toks.get(2), Some(Value::Str("Ġc")));
        let w = g.require_tensor("weight").unwrap();
        assert_eq!(w.shape(), &[4, 2]);
        assert_eq!(w.n_rows(), 2);
        assert_eq!(w.data.len(), 32);
        assert_eq!(f32::from_le_bytes(w.data[4..8].try_into().unwrap()), 11.0);
        assert!(matches!(g.require_tensor("nope"), Err(GgufError::MissingTensor { .. })));
        assert!(matches!(
            g.get_f32("gpt2.block_count"),
            Err(GgufError::WrongType { found: ValueType::U32, .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let blob = sample();
        for n in 0..blob.len() {
            assert!(Gguf::parse(&blob[..n]).is_err(), "prefix of {n} bytes parsed");
        }
    }

    #[test]
    fn rejects_bad_magic_and_version() {
        let mut blob = sample();
        blob[0] = b'X';
        assert!(matches!(Gguf::parse(&blob), Err(GgufError::BadMagic { .. })));
        let mut blob = sample();
        blob[4] = 2;
        assert_eq!(Gguf::parse(&blob).unwrap_err(), GgufError::UnsupportedVersion { found: 2 });
    }

    #[test]
    fn rejects_huge_counts() {
        let mut w = W::new(u64::MAX, 0);
        w.pad(32);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::CountTooLarge { what: "tensor", .. })));
        let mut w = W::new(0, 1);
        w.str("k");
        w.u32(9);
        w.u32(8);
        w.u64(1 << 60);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::CountTooLarge { .. })));
    }

    #[test]
    fn rejects_overflowing_shape_and_unknown_type() {
        let mut w = W::new(1, 0);
        w.tensor("t", &[1 << 32, 1 << 32], 0, 0);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::BadShape { .. })));
        let mut w = W::new(1, 0);
        w.tensor("t", &[32], 99, 0);
        let e = Gguf::parse(&w.0).unwrap_err();
        assert!(matches!(e, GgufError::UnknownTensorType { ty: 99, .. }));
        assert!(e.to_string().contains("does not define"), "{e}");
    }

    #[test]
    fn sizes_tensor_types_mote_cannot_run() {
        // One Q4_K super-block: 256 elements in 144 bytes.
        let mut w = W::new(1, 0);
        w.tensor("t", &[256], 12, 0);
        w.pad(32);
        w.0.extend([0u8; 144]);
        let g = Gguf::parse(&w.0).unwrap();
        let t = g.require_tensor("t").unwrap();
        assert_eq!((t.ty.name(), t.ty.runnable(), t.data.len()), ("Q4_K", None, 144));
        // Rows must still be whole blocks of the type.
        let mut w = W::new(1, 0);
        w.tensor("t", &[32], 12, 0);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::RowNotBlocks { block_len: 256, .. })));
    }

    #[test]
    fn type_table_agrees_with_the_types_mote_runs() {
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0] {
            let t = TensorType::from_u32(ty.to_u32()).unwrap();
            assert_eq!(t, TensorType::from(ty));
            assert_eq!(t.runnable(), Some(ty));
        }
    }

    #[test]
    fn rejects_overlapping_and_out_of_bounds_data() {
        let mut w = W::new(2, 0);
        w.tensor("a", &[8], 0, 0);
        w.tensor("b", &[8], 0, 0); // overlaps a
        w.pad(32);
        w.0.extend_from_slice(&[0; 64]);
        assert!(matches!(
            Gguf::parse(&w.0),
            Err(GgufError::BadDataOffset { offset: 0, expected: 32, .. })
        ));
        let mut w = W::new(1, 0);
        w.tensor("a", &[8], 0, 0);
        w.pad(32);
        w.0.extend_from_slice(&[0; 31]);
        assert!(matches!(
            Gguf::parse(&w.0),
            Err(GgufError::DataOutOfBounds { end: 96, len: 95, .. })
        ));
    }

    #[test]
    fn rejects_q8_0_rows_that_are_not_whole_blocks() {
        let mut w = W::new(1, 0);
        w.tensor("a", &[2, 4], 8, 0);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::RowNotBlocks { row_len: 2, .. })));
    }

    #[test]
    fn rejects_duplicates_and_bad_alignment() {
        let mut w = W::new(0, 2);
        w.kv_u32("k", 1);
        w.kv_u32("k", 2);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::DuplicateKey { .. })));
        let mut w = W::new(0, 1);
        w.kv_u32("general.alignment", 24);
        assert_eq!(Gguf::parse(&w.0).unwrap_err(), GgufError::BadAlignment { value: 24 });
        let mut w = W::new(2, 0);
        w.tensor("a", &[8], 0, 0);
        w.tensor("a", &[8], 0, 32);
        w.pad(32);
        w.0.extend_from_slice(&[0; 64]);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::DuplicateTensor { .. })));
    }

    #[test]
    fn rejects_invalid_utf8_and_bool() {
        let mut w = W::new(0, 1);
        w.str("k");
        w.u32(8);
        w.u64(2);
        w.0.extend_from_slice(&[0xff, 0xfe]);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::InvalidUtf8 { .. })));
        let mut w = W::new(0, 1);
        w.str("k");
        w.u32(7);
        w.0.push(2);
        assert!(matches!(Gguf::parse(&w.0), Err(GgufError::InvalidBool { found: 2, .. })));
    }

    #[test]
    fn every_single_byte_corruption_is_handled() {
        let blob = sample();
        for i in 0..blob.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = blob.clone();
                b[i] = v;
                if let Ok(g) = Gguf::parse(&b) {
                    // Whatever parsed must be fully readable.
                    for (_, v) in g.metadata() {
                        if let Value::Array(a) = v {
                            assert!(a.iter().count() == a.len());
                        }
                    }
                    assert_eq!(g.tensors().count(), g.n_tensors());
                }
            }
        }
    }
}

//! The type tags of GGUF: metadata value types and ggml tensor element types.

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
    pub(super) fn from_u32(v: u32) -> Option<Self> {
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
    pub(super) fn min_size(self) -> usize {
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
    pub(super) number: u32,
    pub(super) name: &'static str,
    pub(super) block_len: u16,
    pub(super) block_bytes: u16,
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

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

mod error;
mod reader;
#[cfg(test)]
mod tests;
mod types;
mod value;

pub use error::GgufError;
use reader::{next_item, Reader};
pub use types::{ggml_type_name, GgmlType, TensorType, ValueType, RUNNABLE_TYPES_ADVICE};
pub use value::{Array, ArrayIter, StrIter, Value};

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
        next_item(&mut self.left, || {
            let key = self.r.str().ok()?;
            let ty = self.r.value_type().ok()?;
            Some((key, self.r.value(ty, 0).ok()?))
        })
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
        next_item(&mut self.left, || {
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
        })
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
#[cfg_attr(feature = "optimize-size", optimize(size))]
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
        .ok_or_else(|| GgufError::UnknownTensorType { name: name_of(name), ty: ty_raw })?;
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

//! A streaming GGUF (version 3) writer: the header is built in memory, then tensor data is written
//! tensor by tensor, so a model never has to be held whole in RAM.
//!
//! GGUF puts every tensor's shape, type and data offset in the header, before any data. So the
//! writer works in two steps:
//! 1. [`GgufBuilder`] collects metadata and tensor infos (name, shape, type); each tensor's offset is
//!    the running sum of the earlier tensors' sizes, each padded to the alignment, in the order they
//!    were added (llama.cpp's reader demands exactly this layout).
//! 2. [`GgufBuilder::start`] writes the header and returns a [`GgufStream`] that takes the data of
//!    each tensor, in the same order, in as many chunks as the caller likes, and checks that every
//!    tensor gets exactly its size.
//!
//! Layout (little-endian, as read by `mote_core::gguf`): magic `GGUF`, version 3, tensor count (u64),
//! metadata count (u64), metadata pairs, tensor infos, zero padding to the alignment, tensor data
//! (each tensor padded to the alignment).

use std::io::{self, Write};

use anyhow::{bail, Context, Result};
use mote_core::gguf::{GgmlType, ValueType, GGML_MAX_DIMS, GGML_MAX_NAME, GGUF_DEFAULT_ALIGNMENT};

/// One metadata value. Arrays hold one element type; nested arrays are not needed by GPT-2 files
/// and are not written.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(MetaArray),
}

/// An array metadata value (GGUF type 9): elements of one type, which [`GgufBuilder::add`] checks.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaArray {
    elem: ValueType,
    items: Vec<MetaValue>,
}

impl MetaArray {
    /// An array of `items`, each of type `elem`.
    pub fn new<T: Into<MetaValue>>(elem: ValueType, items: impl IntoIterator<Item = T>) -> Self {
        Self { elem, items: items.into_iter().map(Into::into).collect() }
    }

    /// The first element whose type is not the array's, if any.
    fn stray(&self) -> Option<ValueType> {
        self.items.iter().map(MetaValue::value_type).find(|&t| t != self.elem)
    }
}

macro_rules! meta_value_from {
    ($($variant:ident($t:ty)),*) => {
        $(impl From<$t> for MetaValue {
            fn from(x: $t) -> Self {
                MetaValue::$variant(x)
            }
        })*
    };
}
meta_value_from!(U8(u8), I8(i8), U16(u16), I16(i16), U32(u32), I32(i32), F32(f32), Bool(bool));
meta_value_from!(Str(String), U64(u64), I64(i64), F64(f64), Array(MetaArray));

impl MetaValue {
    fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::Str(_) => ValueType::String,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
            MetaValue::Array(_) => ValueType::Array,
        }
    }

    /// The value as it follows its key in the file: type number, then the value.
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.value_type().to_u32());
        self.encode_payload(out);
    }

    /// The value alone, as it also stands as an array element.
    fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            MetaValue::U8(x) => out.push(*x),
            MetaValue::I8(x) => out.extend(x.to_le_bytes()),
            MetaValue::U16(x) => out.extend(x.to_le_bytes()),
            MetaValue::I16(x) => out.extend(x.to_le_bytes()),
            MetaValue::U32(x) => out.extend(x.to_le_bytes()),
            MetaValue::I32(x) => out.extend(x.to_le_bytes()),
            MetaValue::F32(x) => out.extend(x.to_le_bytes()),
            MetaValue::Bool(x) => out.push(u8::from(*x)),
            MetaValue::Str(s) => put_str(out, s),
            MetaValue::U64(x) => out.extend(x.to_le_bytes()),
            MetaValue::I64(x) => out.extend(x.to_le_bytes()),
            MetaValue::F64(x) => out.extend(x.to_le_bytes()),
            MetaValue::Array(a) => {
                put_u32(out, a.elem.to_u32());
                put_u64(out, a.items.len() as u64);
                a.items.iter().for_each(|x| x.encode_payload(out));
            }
        }
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend(v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend(v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend(s.as_bytes());
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// A tensor as declared in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDecl {
    /// GGUF name (`blk.0.attn_qkv.weight`).
    pub name: String,
    /// ggml's `ne`: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Data bytes (without padding).
    pub size: u64,
}

/// Step 1: metadata and tensor infos, kept in memory until [`GgufBuilder::start`].
#[derive(Debug)]
pub struct GgufBuilder {
    alignment: u64,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<TensorDecl>,
    /// End of the last declared tensor's padded data.
    data_len: u64,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufBuilder {
    /// An empty file with the default alignment (32, as llama.cpp writes; no `general.alignment`
    /// key is needed for it).
    pub fn new() -> Self {
        Self {
            alignment: GGUF_DEFAULT_ALIGNMENT as u64,
            metadata: Vec::new(),
            tensors: Vec::new(),
            data_len: 0,
        }
    }

    /// Adds a metadata pair. Keys must be unique (the reader rejects duplicates).
    pub fn add(&mut self, key: &str, value: MetaValue) -> Result<()> {
        if self.metadata.iter().any(|(k, _)| k == key) {
            bail!("GGUF metadata key {key:?} added twice");
        }
        if let MetaValue::Array(a) = &value {
            match (a.elem, a.stray()) {
                (ValueType::Array, _) => {
                    bail!("GGUF metadata {key}: nested arrays are not written")
                }
                (elem, Some(found)) => {
                    bail!("GGUF metadata {key}: an array of {elem:?} holds a {found:?}")
                }
                _ => {}
            }
        }
        self.metadata.push((key.to_owned(), value));
        Ok(())
    }

    /// Declares a tensor; its data must later be given to [`GgufStream`] in declaration order.
    /// Returns its data size in bytes.
    pub fn add_tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType) -> Result<u64> {
        if name.is_empty() || name.len() > GGML_MAX_NAME {
            bail!("tensor name {name:?} must be 1..={GGML_MAX_NAME} bytes long");
        }
        if self.tensors.iter().any(|t| t.name == name) {
            bail!("tensor {name} declared twice");
        }
        if dims.is_empty() || dims.len() > GGML_MAX_DIMS || dims.contains(&0) {
            bail!(
                "tensor {name} has shape {dims:?}: 1..={GGML_MAX_DIMS} non-zero dimensions needed"
            );
        }
        if dims[0] % ty.block_len() as u64 != 0 {
            bail!(
                "tensor {name}: row length {} is not a multiple of {}'s block of {}",
                dims[0],
                ty.name(),
                ty.block_len()
            );
        }
        let n = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .with_context(|| format!("tensor {name}: shape {dims:?} overflows"))?;
        let size = ty.bytes_for(n).with_context(|| {
            format!("tensor {name}: {n} elements are not whole {} blocks", ty.name())
        })?;
        let offset = self.data_len;
        self.data_len = align_up(offset + size, self.alignment);
        self.tensors.push(TensorDecl {
            name: name.to_owned(),
            dims: dims.to_vec(),
            ty,
            offset,
            size,
        });
        Ok(size)
    }

    /// Tensors declared so far.
    pub fn tensors(&self) -> &[TensorDecl] {
        &self.tensors
    }

    /// The header's bytes, padded to the alignment (the data section starts right after).
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut h = Vec::new();
        put_u32(&mut h, mote_core::gguf::GGUF_MAGIC);
        put_u32(&mut h, mote_core::gguf::GGUF_VERSION);
        put_u64(&mut h, self.tensors.len() as u64);
        put_u64(&mut h, self.metadata.len() as u64);
        for (k, v) in &self.metadata {
            put_str(&mut h, k);
            v.encode(&mut h);
        }
        for t in &self.tensors {
            put_str(&mut h, &t.name);
            put_u32(&mut h, t.dims.len() as u32);
            for &d in &t.dims {
                put_u64(&mut h, d);
            }
            put_u32(&mut h, t.ty.to_u32());
            put_u64(&mut h, t.offset);
        }
        h.resize(align_up(h.len() as u64, self.alignment) as usize, 0);
        h
    }

    /// Total file size once every tensor is written.
    pub fn file_size(&self) -> u64 {
        self.header_bytes().len() as u64 + self.data_len
    }

    /// Step 2: writes the header to `out` and returns the stream that takes the tensor data.
    pub fn start<W: Write>(self, mut out: W) -> io::Result<GgufStream<W>> {
        out.write_all(&self.header_bytes())?;
        Ok(GgufStream {
            out,
            alignment: self.alignment,
            tensors: self.tensors,
            current: 0,
            written: 0,
        })
    }
}

/// Step 2: tensor data, in declaration order, in chunks of any size.
#[derive(Debug)]
pub struct GgufStream<W: Write> {
    out: W,
    alignment: u64,
    tensors: Vec<TensorDecl>,
    /// Index of the tensor being written.
    current: usize,
    /// Bytes of it written so far.
    written: u64,
}

impl<W: Write> GgufStream<W> {
    /// The tensor whose data comes next, if any.
    pub fn next_tensor(&self) -> Option<&TensorDecl> {
        self.tensors.get(self.current)
    }

    /// Appends `bytes` to the current tensor's data. When the tensor is complete, its padding is
    /// written and the next tensor becomes current. A chunk must not cross into the next tensor.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(t) = self.tensors.get(self.current) else {
            bail!("GGUF writer: {} bytes of tensor data after the last tensor", bytes.len());
        };
        let left = t.size - self.written;
        if bytes.len() as u64 > left {
            bail!(
                "GGUF writer: tensor {} takes {} bytes, {} more given after {}",
                t.name,
                t.size,
                bytes.len(),
                self.written
            );
        }
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written == t.size {
            let pad = align_up(t.size, self.alignment) - t.size;
            self.out.write_all(&vec![0u8; pad as usize])?;
            self.current += 1;
            self.written = 0;
        }
        Ok(())
    }

    /// Checks that every declared tensor got all its data and returns the output (not flushed).
    pub fn finish(self) -> Result<W> {
        if let Some(t) = self.tensors.get(self.current) {
            bail!(
                "GGUF writer: tensor {} has {} of its {} bytes; every declared tensor must be written",
                t.name,
                self.written,
                t.size
            );
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_core::gguf::{Gguf, Value};

    fn sample() -> Vec<u8> {
        let mut b = GgufBuilder::new();
        b.add("general.architecture", MetaValue::Str("gpt2".into())).unwrap();
        b.add("u8", MetaValue::U8(7)).unwrap();
        b.add("i8", MetaValue::I8(-7)).unwrap();
        b.add("u16", MetaValue::U16(700)).unwrap();
        b.add("i16", MetaValue::I16(-700)).unwrap();
        b.add("u32", MetaValue::U32(70_000)).unwrap();
        b.add("i32", MetaValue::I32(-70_000)).unwrap();
        b.add("f32", MetaValue::F32(1e-5)).unwrap();
        b.add("bool", MetaValue::Bool(true)).unwrap();
        b.add("u64", MetaValue::U64(1 << 40)).unwrap();
        b.add("i64", MetaValue::I64(-(1 << 40))).unwrap();
        b.add("f64", MetaValue::F64(0.25)).unwrap();
        let strs = MetaArray::new(ValueType::String, ["a".to_string(), "Ġb".into()]);
        b.add("strs", strs.into()).unwrap();
        b.add("u32s", MetaArray::new(ValueType::U32, [1u32, 2, 3]).into()).unwrap();
        b.add("i32s", MetaArray::new(ValueType::I32, [-1i32, 3]).into()).unwrap();
        b.add_tensor("bias", &[3], GgmlType::F32).unwrap();
        b.add_tensor("w", &[32, 2], GgmlType::Q8_0).unwrap();
        let mut s = b.start(Vec::new()).unwrap();
        s.write(&[0u8; 4]).unwrap();
        s.write(&[1u8; 8]).unwrap();
        s.write(&[2u8; 68]).unwrap();
        s.finish().unwrap()
    }

    #[test]
    fn round_trips_every_value_type_through_the_core_reader() {
        let blob = sample();
        let g = Gguf::parse(&blob).unwrap();
        assert_eq!(g.get_str("general.architecture").unwrap(), "gpt2");
        assert_eq!(g.get("u8"), Some(Value::U8(7)));
        assert_eq!(g.get("i8"), Some(Value::I8(-7)));
        assert_eq!(g.get("u16"), Some(Value::U16(700)));
        assert_eq!(g.get("i16"), Some(Value::I16(-700)));
        assert_eq!(g.get_uint("u32").unwrap(), 70_000);
        assert_eq!(g.get("i32"), Some(Value::I32(-70_000)));
        assert_eq!(g.get_f32("f32").unwrap(), 1e-5);
        assert_eq!(g.get("bool"), Some(Value::Bool(true)));
        assert_eq!(g.get_uint("u64").unwrap(), 1 << 40);
        assert_eq!(g.get("i64"), Some(Value::I64(-(1 << 40))));
        assert_eq!(g.get("f64"), Some(Value::F64(0.25)));
        let strs: Vec<&str> = g.get_array("strs").unwrap().strings().unwrap().collect();
        assert_eq!(strs, ["a", "Ġb"]);
        let u32s = g.get_array("u32s").unwrap();
        assert_eq!(u32s.get(2), Some(Value::U32(3)));
        assert_eq!(g.get_array("i32s").unwrap().get(0), Some(Value::I32(-1)));
        let bias = g.require_tensor("bias").unwrap();
        assert_eq!(
            (bias.ty.runnable(), bias.offset, bias.data.len()),
            (Some(GgmlType::F32), 0, 12)
        );
        let w = g.require_tensor("w").unwrap();
        assert_eq!(
            (w.ty.runnable(), w.offset, w.shape()),
            (Some(GgmlType::Q8_0), 32, &[32u64, 2][..])
        );
        assert_eq!(&bias.data[4..], &[1u8; 8][..]);
        assert_eq!(w.data, &[2u8; 68][..]);
        assert_eq!(blob.len() % 32, 0);
    }

    #[test]
    fn offsets_are_running_padded_sums() {
        let mut b = GgufBuilder::new();
        b.add_tensor("a", &[5], GgmlType::F32).unwrap();
        b.add_tensor("b", &[33], GgmlType::F16).unwrap();
        b.add_tensor("c", &[64, 3], GgmlType::Q8_0).unwrap();
        let offs: Vec<u64> = b.tensors().iter().map(|t| t.offset).collect();
        assert_eq!(offs, [0, 32, 128]);
    }

    #[test]
    fn rejects_bad_declarations() {
        let mut b = GgufBuilder::new();
        assert!(b.add_tensor("q", &[33], GgmlType::Q8_0).is_err());
        assert!(b.add_tensor("z", &[0, 2], GgmlType::F32).is_err());
        assert!(b.add_tensor("", &[1], GgmlType::F32).is_err());
        assert!(b.add_tensor(&"x".repeat(64), &[1], GgmlType::F32).is_err());
        b.add_tensor("a", &[1], GgmlType::F32).unwrap();
        assert!(b.add_tensor("a", &[1], GgmlType::F32).is_err());
        b.add("k", MetaValue::U32(1)).unwrap();
        assert!(b.add("k", MetaValue::U32(2)).is_err());
        let mixed = MetaArray::new(ValueType::U32, [MetaValue::U32(1), MetaValue::I32(2)]);
        let e = b.add("mixed", mixed.into()).unwrap_err().to_string();
        assert!(e.contains("an array of U32 holds a I32"), "{e}");
    }

    #[test]
    fn rejects_wrong_amount_of_tensor_data() {
        let mut b = GgufBuilder::new();
        b.add_tensor("a", &[2], GgmlType::F32).unwrap();
        let mut s = b.start(Vec::new()).unwrap();
        assert!(s.write(&[0u8; 9]).is_err());
        s.write(&[0u8; 4]).unwrap();
        assert!(s.finish().is_err());
    }
}

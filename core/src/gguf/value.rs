//! Metadata values: scalars, strings and arrays, borrowed from the blob.

use super::reader::next_item;
use super::{Reader, ValueType};

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

    /// Any integer value, of whatever width and sign (`i128` holds them all).
    fn as_integer(&self) -> Option<i128> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::I8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::U64(v) => Some(v.into()),
            Value::I64(v) => Some(v.into()),
            _ => None,
        }
    }

    /// Any integer value that is non-negative and fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// Any integer value that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_integer().and_then(|v| i64::try_from(v).ok())
    }
}

/// An array value: `len` elements of type `elem`, already checked by [`Gguf::parse`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    pub(super) elem: ValueType,
    pub(super) len: usize,
    /// The elements' bytes (after the element type and count).
    pub(super) data: &'a [u8],
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
    pub(super) r: Reader<'a>,
    pub(super) elem: ValueType,
    pub(super) left: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        next_item(&mut self.left, || self.r.value(self.elem, 1).ok())
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Iterator over an array of strings.
#[derive(Clone)]
pub struct StrIter<'a> {
    pub(super) r: Reader<'a>,
    pub(super) left: usize,
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
        next_item(&mut self.left, || self.r.str().ok())
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

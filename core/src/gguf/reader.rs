//! The bounds-checked little-endian cursor every read of the blob goes through.

use super::{Array, GgufError, Value, ValueType, MAX_ARRAY_DEPTH};

/// A bounds-checked little-endian cursor over the blob.
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    pub(super) blob: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn remaining(&self) -> usize {
        self.blob.len().saturating_sub(self.pos)
    }

    pub(super) fn bytes(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        let truncated =
            || GgufError::Truncated { offset: self.pos, needed: n, available: self.remaining() };
        let len = usize::try_from(n).map_err(|_| truncated())?;
        let end = self.pos.checked_add(len).ok_or_else(truncated)?;
        let out = self.blob.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(out)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let b = self.bytes(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8, GgufError> {
        Ok(self.array::<1>()?[0])
    }
    pub(super) fn u16(&mut self) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(super) fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count of items each at least `min_size` bytes, checked against what remains.
    pub(super) fn count(&mut self, what: &'static str, min_size: usize) -> Result<u64, GgufError> {
        let offset = self.pos;
        let count = self.u64()?;
        let fits = count.checked_mul(min_size as u64).is_some_and(|b| b <= self.remaining() as u64);
        if !fits {
            return Err(GgufError::CountTooLarge { what, count, offset });
        }
        Ok(count)
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes.
    pub(super) fn str(&mut self) -> Result<&'a str, GgufError> {
        let len = self.u64()?;
        let offset = self.pos;
        let b = self.bytes(len)?;
        core::str::from_utf8(b).map_err(|_| GgufError::InvalidUtf8 { offset })
    }

    pub(super) fn value_type(&mut self) -> Result<ValueType, GgufError> {
        let offset = self.pos;
        let v = self.u32()?;
        ValueType::from_u32(v).ok_or_else(|| GgufError::InvalidValueType { found: v, offset })
    }

    /// Reads one value of type `ty`, checking it whole (strings are UTF-8, bools 0 or 1, arrays
    /// element by element).
    pub(super) fn value(&mut self, ty: ValueType, depth: u32) -> Result<Value<'a>, GgufError> {
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

/// The next of the `left` items of an iterator over the blob, read by `read`: `None` when none are
/// left, or when `read` fails, which then ends the iteration. The blob was checked whole at parse
/// time, so a failure here is not expected; stopping is the answer that cannot panic.
pub(super) fn next_item<T>(left: &mut usize, read: impl FnOnce() -> Option<T>) -> Option<T> {
    if *left == 0 {
        return None;
    }
    *left = left.saturating_sub(1);
    let item = read();
    if item.is_none() {
        *left = 0;
    }
    item
}

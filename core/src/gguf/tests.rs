//! Tests of the GGUF reader: every field and every way a blob can be malformed.

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
    assert!(matches!(Gguf::parse(&w.0), Err(GgufError::DataOutOfBounds { end: 96, len: 95, .. })));
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

#[test]
fn integers_convert_to_u64_and_i64_only_when_they_fit() {
    assert_eq!(Value::I8(-3).as_i64(), Some(-3));
    assert_eq!(Value::I8(-3).as_u64(), None);
    assert_eq!(Value::U16(7).as_u64(), Some(7));
    assert_eq!(Value::U64(u64::MAX).as_u64(), Some(u64::MAX));
    assert_eq!(Value::U64(u64::MAX).as_i64(), None);
    assert_eq!(Value::I64(i64::MIN).as_i64(), Some(i64::MIN));
    assert_eq!(Value::F32(1.0).as_u64(), None);
    assert_eq!(Value::Bool(true).as_i64(), None);
}

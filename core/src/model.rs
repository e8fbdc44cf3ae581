//! A GPT-2 model read from a GGUF blob: the hyper-parameters (plain `Copy` data, validated) and the
//! weights (views into the blob, never copied).
//!
//! Letters: `V` vocabulary size, `T` context length, `C` width (`n_embd`), `F` MLP width
//! (`n_ff`, 4C in GPT-2), `L` layers, `NH` heads, `HS = C / NH` head size.
//!
//! GGUF stores a matrix as `[n_in, n_out]`: `dims[0]` is the row length, each row is one output unit
//! (the converter has already transposed GPT-2's `Conv1D` weights). Names follow llama.cpp's GPT-2
//! graph: `token_embd` (wte), `position_embd` (wpe), `blk.N.attn_norm` (ln_1), `blk.N.attn_qkv`
//! (c_attn), `blk.N.attn_output` (attn.c_proj), `blk.N.ffn_norm` (ln_2), `blk.N.ffn_up` (c_fc),
//! `blk.N.ffn_down` (mlp.c_proj), `output_norm` (ln_f), optional `output` (lm_head, else tied to wte).
//!
//! [`Model::load`] looks every per-layer view up by name once, checks its shape and type, and keeps
//! it in storage the caller hands in (one [`Layer`] per block), so that a forward step does no name
//! look-ups and never meets a bad tensor. The views are the model's only per-layer state; a
//! firmware puts them in a static sized for its model's `L`, so that they are never on the stack.

// Reads bytes from outside: no unchecked indexing, no arithmetic that can overflow.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::arithmetic_side_effects))]

use core::fmt;

use crate::gguf::{name_of, GgmlType, Gguf, GgufError, Name, TensorInfo, ERROR_NAME_LEN};
use crate::quant::{f16_bits_to_f32, Q8_0_BLOCK_BYTES, QK8_0};

/// The architecture mote runs (`general.architecture`).
pub const ARCHITECTURE: &str = "gpt2";

/// Blocks of the deepest GPT-2, XL's 48: the storage a desktop hands [`Model::load`] for any GPT-2
/// (a [`Layer`] is 144 bytes on a 32-bit target, 288 on a 64-bit one). A firmware hands in exactly
/// its model's `L` instead.
pub const MAX_LAYERS: usize = 48;

/// Hyper-parameters of a GPT-2 model, read from GGUF metadata and validated by [`Model::load`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HParams {
    /// `V`: vocabulary size (the length of `tokenizer.ggml.tokens`).
    pub n_vocab: usize,
    /// `T`: context length (`gpt2.context_length`).
    pub n_ctx: usize,
    /// `C`: width (`gpt2.embedding_length`).
    pub n_embd: usize,
    /// `NH`: attention heads (`gpt2.attention.head_count`).
    pub n_head: usize,
    /// `L`: blocks (`gpt2.block_count`).
    pub n_layer: usize,
    /// `F`: MLP hidden width (`gpt2.feed_forward_length`).
    pub n_ff: usize,
    /// Layer norm epsilon (`gpt2.attention.layer_norm_epsilon`).
    pub eps: f32,
    /// End-of-text token (`tokenizer.ggml.eos_token_id`), if the file names one.
    pub eos_token: Option<u32>,
}

impl HParams {
    /// `HS`: the head size, `C / NH` (0 if there are no heads; [`Model::load`] rejects that).
    pub const fn head_dim(&self) -> usize {
        match self.n_embd.checked_div(self.n_head) {
            Some(hs) => hs,
            None => 0,
        }
    }
}

/// Why a GGUF blob is not a GPT-2 model mote can run.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ModelError {
    /// The blob is malformed, or a required key or tensor is missing or of the wrong kind.
    Gguf(GgufError),
    /// `general.architecture` is not `gpt2`.
    WrongArchitecture {
        /// The architecture in the file.
        found: Name,
    },
    /// A hyper-parameter that is zero or does not fit in memory addresses.
    BadHParam {
        /// The metadata key.
        key: &'static str,
        /// Its value.
        value: u64,
    },
    /// The layer norm epsilon is not a positive finite number.
    BadEpsilon {
        /// The value in the file.
        value: f32,
    },
    /// The head count does not divide the width.
    HeadsDoNotDivideWidth {
        /// `C`.
        n_embd: usize,
        /// `NH`.
        n_head: usize,
    },
    /// The end-of-text token is not in the vocabulary.
    EosOutOfRange {
        /// The token id.
        eos: u64,
        /// The vocabulary size.
        n_vocab: usize,
    },
    /// A tensor whose shape disagrees with the hyper-parameters.
    BadShape {
        /// The tensor.
        name: Name,
        /// The shape expected, `[n_in, n_out]` (`n_out` is 1 for a vector).
        expected: [u64; 2],
        /// The shape in the file (unused dimensions are 1).
        found: [u64; 4],
    },
    /// More blocks than the storage handed to [`Model::load`] holds.
    TooManyLayers {
        /// `L` in the file.
        n_layer: usize,
        /// The blocks the storage holds ([`MAX_LAYERS`] on a desktop).
        max: usize,
    },
    /// A vector (bias or norm) stored as another type than F32.
    VectorNotF32 {
        /// The tensor.
        name: Name,
        /// Its type.
        ty: GgmlType,
    },
    /// A matrix that the forward pass multiplies is not Q8_0, and this build multiplies Q8_0
    /// matrices only (mote-core's `weights-q8_0-only` feature).
    ProductNotBuilt {
        /// The tensor.
        name: Name,
        /// Its type.
        ty: GgmlType,
    },
}

impl From<GgufError> for ModelError {
    fn from(e: GgufError) -> Self {
        Self::Gguf(e)
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gguf(e) => e.fmt(f),
            Self::WrongArchitecture { found } => {
                write!(f, "model architecture is \"{found}\"; mote runs \"{ARCHITECTURE}\" only")
            }
            Self::BadHParam { key, value } => {
                write!(f, "hyper-parameter {key} = {value} is zero or too large")
            }
            Self::BadEpsilon { value } => {
                write!(f, "layer norm epsilon {value} is not a positive finite number")
            }
            Self::HeadsDoNotDivideWidth { n_embd, n_head } => {
                write!(f, "head count {n_head} does not divide the width {n_embd}")
            }
            Self::EosOutOfRange { eos, n_vocab } => {
                write!(f, "end-of-text token {eos} is outside the vocabulary of {n_vocab} tokens")
            }
            Self::BadShape { name, expected, found } => write!(
                f,
                "tensor \"{name}\" has shape {:?}, expected {:?}",
                trim_dims(found),
                trim_dims(&[expected[0], expected[1], 1, 1])
            ),
            Self::TooManyLayers { n_layer, max } => {
                write!(f, "the model has {n_layer} blocks; mote runs at most {max}")
            }
            Self::VectorNotF32 { name, ty } => {
                write!(f, "tensor \"{name}\" has type {}, vectors must be F32", ty.name())
            }
            Self::ProductNotBuilt { name, ty } => write!(
                f,
                "tensor \"{name}\" has type {}, but this build multiplies Q8_0 matrices only \
                 (mote-core's weights-q8_0-only feature)",
                ty.name()
            ),
        }
    }
}

impl core::error::Error for ModelError {}

/// The dimensions of a shape up to the last one that is not 1 (at least one).
fn trim_dims(d: &[u64; 4]) -> &[u64] {
    let used = d.iter().rposition(|&x| x != 1).map_or(1, |i| i.saturating_add(1));
    d.get(..used).unwrap_or(d)
}

/// A matrix `W(n_out, n_in)` stored row by row in the blob: row `i` is output unit `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matrix<'a> {
    /// Element type of the rows.
    pub ty: GgmlType,
    /// Row length (input size, GGUF `dims[0]`).
    pub n_in: usize,
    /// Number of rows (output size, GGUF `dims[1]`).
    pub n_out: usize,
    /// The rows, `n_out * row_bytes()` bytes.
    pub data: &'a [u8],
}

impl<'a> Matrix<'a> {
    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        match self.ty {
            GgmlType::F32 => self.n_in.saturating_mul(4),
            GgmlType::F16 => self.n_in.saturating_mul(2),
            GgmlType::Q8_0 => (self.n_in / QK8_0).saturating_mul(Q8_0_BLOCK_BYTES),
        }
    }

    /// Row `i`'s bytes, or `None` past the last row.
    pub fn row(&self, i: usize) -> Option<&'a [u8]> {
        let rb = self.row_bytes();
        let start = i.checked_mul(rb)?;
        self.data.get(start..start.checked_add(rb)?)
    }

    /// Row `i` as f32: `out(n_in) = W(i, :)`. Returns `false` (and leaves `out` alone) past the last
    /// row.
    pub fn row_to_f32(&self, out: &mut [f32], i: usize) -> bool {
        let Some(row) = self.row(i) else {
            return false;
        };
        match self.ty {
            GgmlType::F32 => {
                for (o, b) in
                    out.iter_mut().zip(row.chunks_exact(4).filter_map(<[u8]>::first_chunk))
                {
                    *o = f32::from_le_bytes(*b);
                }
            }
            GgmlType::F16 => {
                for (o, b) in
                    out.iter_mut().zip(row.chunks_exact(2).filter_map(<[u8]>::first_chunk))
                {
                    *o = f16_bits_to_f32(u16::from_le_bytes(*b));
                }
            }
            GgmlType::Q8_0 => crate::quant::dequantize_row_q8_0(out, row),
        }
        true
    }
}

/// A vector of little-endian f32 in the blob (a bias, or a layer norm's gain or shift). The blob may
/// sit at any alignment (flash, `include_bytes!`), so the values are read byte-wise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F32s<'a> {
    /// `4 * len` bytes.
    pub data: &'a [u8],
}

impl<'a> F32s<'a> {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len() / 4
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.data.len() < 4
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        // `map` over `chunks_exact` keeps the length known, so a `zip` with a slice compiles to one
        // counted loop of word loads (`filter_map` would not); every chunk is 4 bytes, so the
        // fallback is never taken and compiles away.
        self.data.chunks_exact(4).map(|b| <[u8; 4]>::try_from(b).map_or(0.0, f32::from_le_bytes))
    }
}

/// A layer norm's parameters: `y = (x - mean) / sqrt(var + eps) * weight + bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Norm<'a> {
    /// Gain, `(C)`.
    pub weight: F32s<'a>,
    /// Shift, `(C)`.
    pub bias: F32s<'a>,
}

/// A linear layer `y = W x + b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear<'a> {
    /// `W(n_out, n_in)`.
    pub weight: Matrix<'a>,
    /// `b(n_out)`.
    pub bias: F32s<'a>,
}

/// One transformer block's weights, GPT-2 names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer<'a> {
    /// Layer norm before attention (`blk.N.attn_norm`).
    pub ln_1: Norm<'a>,
    /// Query, key and value projection, `(3C, C)` (`blk.N.attn_qkv`).
    pub c_attn: Linear<'a>,
    /// Attention output projection, `(C, C)` (`blk.N.attn_output`).
    pub attn_c_proj: Linear<'a>,
    /// Layer norm before the MLP (`blk.N.ffn_norm`).
    pub ln_2: Norm<'a>,
    /// MLP up projection, `(F, C)` (`blk.N.ffn_up`).
    pub c_fc: Linear<'a>,
    /// MLP down projection, `(C, F)` (`blk.N.ffn_down`).
    pub mlp_c_proj: Linear<'a>,
}

impl<'a> Layer<'a> {
    /// An empty entry of the storage handed to [`Model::load`], before loading fills it.
    pub const EMPTY: Self = {
        let v = F32s { data: &[] };
        let m = Matrix { ty: GgmlType::F32, n_in: 0, n_out: 0, data: &[] };
        let n = Norm { weight: v, bias: v };
        let l = Linear { weight: m, bias: v };
        Self { ln_1: n, c_attn: l, attn_c_proj: l, ln_2: n, c_fc: l, mlp_c_proj: l }
    };

    /// Looks block `l`'s tensors up by name and checks them against `hp`.
    #[inline(never)]
    #[cfg_attr(feature = "optimize-size", optimize(size))]
    fn find(g: &Gguf<'a>, hp: &HParams, l: usize) -> Result<Self, ModelError> {
        let HParams { n_embd: c, n_ff: f, .. } = *hp;
        Ok(Self {
            ln_1: norm(g, Some(l), "attn_norm", c)?,
            c_attn: linear(g, l, "attn_qkv", c, c.saturating_mul(3))?,
            attn_c_proj: linear(g, l, "attn_output", c, c)?,
            ln_2: norm(g, Some(l), "ffn_norm", c)?,
            c_fc: linear(g, l, "ffn_up", c, f)?,
            mlp_c_proj: linear(g, l, "ffn_down", f, c)?,
        })
    }
}

/// A GPT-2 model: hyper-parameters plus views into the GGUF blob.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    /// The validated hyper-parameters.
    pub hparams: HParams,
    /// Token embedding, `(V, C)` (`token_embd`).
    pub wte: Matrix<'a>,
    /// Position embedding, `(T, C)` (`position_embd`).
    pub wpe: Matrix<'a>,
    /// Final layer norm (`output_norm`).
    pub ln_f: Norm<'a>,
    /// Output projection, `(V, C)`: `output` if the file has it, else `wte` (tied).
    pub lm_head: Matrix<'a>,
    /// Every block's views, `(L)`, looked up once by [`Model::load`] into the caller's storage.
    layers: &'a [Layer<'a>],
    gguf: Gguf<'a>,
}

/// Reads a size hyper-parameter: present, an integer, non-zero, and fitting `usize`.
#[inline(never)]
fn size_param(g: &Gguf<'_>, key: &'static str) -> Result<usize, ModelError> {
    let v = g.get_uint(key)?;
    match usize::try_from(v) {
        Ok(n) if n > 0 && n <= u32::MAX as usize => Ok(n),
        _ => Err(ModelError::BadHParam { key, value: v }),
    }
}

impl HParams {
    /// Reads and validates the hyper-parameters of a GPT-2 GGUF file (the tensors are checked by
    /// [`Model::load`]).
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self, ModelError> {
        let arch = g.get_str("general.architecture")?;
        if arch != ARCHITECTURE {
            return Err(ModelError::WrongArchitecture { found: name_of(arch) });
        }
        let n_ctx = size_param(g, "gpt2.context_length")?;
        let n_embd = size_param(g, "gpt2.embedding_length")?;
        let n_ff = size_param(g, "gpt2.feed_forward_length")?;
        let n_layer = size_param(g, "gpt2.block_count")?;
        let n_head = size_param(g, "gpt2.attention.head_count")?;
        let eps = g.get_f32("gpt2.attention.layer_norm_epsilon")?;
        if !(eps.is_finite() && eps > 0.0) {
            return Err(ModelError::BadEpsilon { value: eps });
        }
        if n_embd.checked_rem(n_head) != Some(0) {
            return Err(ModelError::HeadsDoNotDivideWidth { n_embd, n_head });
        }
        let n_vocab = g.get_array("tokenizer.ggml.tokens")?.len();
        if n_vocab == 0 || n_vocab > u32::MAX as usize {
            return Err(ModelError::BadHParam {
                key: "tokenizer.ggml.tokens",
                value: n_vocab as u64,
            });
        }
        let eos_token = match g.get("tokenizer.ggml.eos_token_id") {
            None => None,
            Some(_) => {
                let eos = g.get_uint("tokenizer.ggml.eos_token_id")?;
                if eos >= n_vocab as u64 {
                    return Err(ModelError::EosOutOfRange { eos, n_vocab });
                }
                Some(eos as u32)
            }
        };
        Ok(Self { n_vocab, n_ctx, n_embd, n_head, n_layer, n_ff, eps, eos_token })
    }
}

/// A tensor name built without allocating (`blk.12.attn_qkv.weight`).
type TensorName = heapless::String<ERROR_NAME_LEN>;

/// `blk.{l}.{part}.{suffix}` for a block's tensor, `{part}.{suffix}` for a global one.
fn tensor_name(layer: Option<usize>, part: &str, suffix: &str) -> TensorName {
    let mut s = TensorName::new();
    // The longest name built here is well under ERROR_NAME_LEN; a failed push would only make the
    // look-up miss and report the (cut) name as missing. Pieces are pushed by hand rather than
    // with `write!`: on a microcontroller this is the only use of `core::fmt` while loading.
    if let Some(l) = layer {
        let _ = s.push_str("blk.");
        push_decimal(&mut s, l);
        let _ = s.push('.');
    }
    let _ = s.push_str(part);
    let _ = s.push('.');
    let _ = s.push_str(suffix);
    s
}

/// Appends `n` in decimal.
fn push_decimal(s: &mut TensorName, n: usize) {
    if n >= 10 {
        push_decimal(s, n / 10);
    }
    if let Some(digit) = char::from_digit((n % 10) as u32, 10) {
        let _ = s.push(digit);
    }
}

// The loading helpers below (and `size_param`, `Layer::find`) are `#[inline(never)]`: loading
// runs once, and one out-of-line copy of each check is smaller code than one per call site
// (docs/size.md), at no cost to a forward step.

/// A vector is expected as `[n, 1]`, which a 1-D GGUF tensor `[n]` is (unused dimensions are 1).
#[inline(never)]
fn check_shape(t: &TensorInfo<'_>, expected: [u64; 2]) -> Result<(), ModelError> {
    if t.dims == [expected[0], expected[1], 1, 1] {
        Ok(())
    } else {
        Err(ModelError::BadShape { name: name_of(t.name), expected, found: t.dims })
    }
}

#[inline(never)]
fn matrix<'a>(
    g: &Gguf<'a>,
    name: &str,
    n_in: usize,
    n_out: usize,
) -> Result<Matrix<'a>, ModelError> {
    let t = g.require_tensor(name)?;
    matrix_of(&t, n_in, n_out)
}

#[inline(never)]
fn matrix_of<'a>(t: &TensorInfo<'a>, n_in: usize, n_out: usize) -> Result<Matrix<'a>, ModelError> {
    check_shape(t, [n_in as u64, n_out as u64])?;
    let ty = runnable(t)?;
    // The GGUF reader has checked that rows are whole blocks and that the data is exactly the
    // tensor's size, so every row of `row_bytes()` is inside `data`.
    Ok(Matrix { ty, n_in, n_out, data: t.data })
}

/// The tensor's type, if mote can compute with it.
fn runnable(t: &TensorInfo<'_>) -> Result<GgmlType, ModelError> {
    t.ty.runnable().ok_or_else(|| {
        GgufError::UnsupportedTensorType { name: name_of(t.name), ty: t.ty.to_u32() }.into()
    })
}

#[inline(never)]
#[cfg_attr(feature = "optimize-size", optimize(size))]
fn vector<'a>(g: &Gguf<'a>, name: &str, n: usize) -> Result<F32s<'a>, ModelError> {
    let t = g.require_tensor(name)?;
    check_shape(&t, [n as u64, 1])?;
    let ty = runnable(&t)?;
    if ty != GgmlType::F32 {
        return Err(ModelError::VectorNotF32 { name: name_of(t.name), ty });
    }
    Ok(F32s { data: t.data })
}

#[inline(never)]
#[cfg_attr(feature = "optimize-size", optimize(size))]
fn norm<'a>(
    g: &Gguf<'a>,
    layer: Option<usize>,
    part: &str,
    n: usize,
) -> Result<Norm<'a>, ModelError> {
    Ok(Norm {
        weight: vector(g, &tensor_name(layer, part, "weight"), n)?,
        bias: vector(g, &tensor_name(layer, part, "bias"), n)?,
    })
}

#[inline(never)]
#[cfg_attr(feature = "optimize-size", optimize(size))]
fn linear<'a>(
    g: &Gguf<'a>,
    layer: usize,
    part: &str,
    n_in: usize,
    n_out: usize,
) -> Result<Linear<'a>, ModelError> {
    let name = tensor_name(Some(layer), part, "weight");
    Ok(Linear {
        weight: multiplied(matrix(g, &name, n_in, n_out)?, &name)?,
        bias: vector(g, &tensor_name(Some(layer), part, "bias"), n_out)?,
    })
}

/// `m`, a matrix the forward pass multiplies: with mote-core's `weights-q8_0-only` feature (a
/// firmware whose model multiplies Q8_0 matrices only), any other type is refused, since the F32
/// and F16 products are left out of the build.
fn multiplied<'a>(m: Matrix<'a>, name: &str) -> Result<Matrix<'a>, ModelError> {
    if cfg!(feature = "weights-q8_0-only") && m.ty != GgmlType::Q8_0 {
        return Err(ModelError::ProductNotBuilt { name: name_of(name), ty: m.ty });
    }
    Ok(m)
}

impl<'a> Model<'a> {
    /// Reads the hyper-parameters and finds and checks every tensor of a GPT-2 GGUF file, keeping
    /// block `l`'s views in `layers[l]` (the model borrows the first `L` entries). `layers` must
    /// hold at least `L` entries ([`MAX_LAYERS`] takes any GPT-2):
    ///
    /// ```ignore
    /// let mut layers = [Layer::EMPTY; MAX_LAYERS];
    /// let model = Model::load(&gguf, &mut layers)?;
    /// ```
    pub fn load<'g: 'a>(g: &Gguf<'g>, layers: &'a mut [Layer<'g>]) -> Result<Self, ModelError> {
        let hp = HParams::from_gguf(g)?;
        let (v, t, c) = (hp.n_vocab, hp.n_ctx, hp.n_embd);
        let wte = matrix(g, "token_embd.weight", c, v)?;
        let wpe = matrix(g, "position_embd.weight", c, t)?;
        let ln_f = norm(g, None, "output_norm", c)?;
        let lm_head = match g.tensor("output.weight") {
            Some(out) => multiplied(matrix_of(&out, c, v)?, "output.weight")?,
            None => multiplied(wte, "token_embd.weight")?,
        };
        let max = layers.len();
        let Some(layers) = layers.get_mut(..hp.n_layer) else {
            return Err(ModelError::TooManyLayers { n_layer: hp.n_layer, max });
        };
        for (l, slot) in layers.iter_mut().enumerate() {
            *slot = Layer::find(g, &hp, l)?;
        }
        let layers: &'a [Layer<'g>] = layers;
        Ok(Self { hparams: hp, wte, wpe, ln_f, lm_head, layers, gguf: *g })
    }

    /// Block `l`'s weights. A block past the last one is reported as its first missing tensor,
    /// `blk.{l}.attn_norm.weight`.
    pub fn layer(&self, l: usize) -> Result<Layer<'a>, ModelError> {
        match self.layers().get(l) {
            Some(w) => Ok(*w),
            None => Err(ModelError::Gguf(GgufError::MissingTensor {
                name: name_of(&tensor_name(Some(l), "attn_norm", "weight")),
            })),
        }
    }

    /// Every block's weights in order, `(L)`.
    pub fn layers(&self) -> &'a [Layer<'a>] {
        self.layers
    }

    /// Whether every matrix the forward pass multiplies (each block's four, the output
    /// projection) is Q8_0: what a build with mote-core's `weights-q8_0-only` feature runs.
    pub fn multiplies_q8_0_only(&self) -> bool {
        let q8 = |l: &Linear<'_>| l.weight.ty == GgmlType::Q8_0;
        self.lm_head.ty == GgmlType::Q8_0
            && self
                .layers
                .iter()
                .all(|l| q8(&l.c_attn) && q8(&l.attn_c_proj) && q8(&l.c_fc) && q8(&l.mlp_c_proj))
    }

    /// The parsed GGUF file the weights point into.
    pub fn gguf(&self) -> &Gguf<'a> {
        &self.gguf
    }
}

/// Synthetic GPT-2 GGUF files for the unit tests of this crate.
#[cfg(test)]
pub(crate) mod test_model;

#[cfg(test)]
mod tests {
    use super::test_model::{Meta, Spec};
    use super::*;

    fn load(blob: &[u8]) -> Result<Model<'_>, ModelError> {
        let g = Gguf::parse(blob).map_err(ModelError::Gguf)?;
        Model::load(&g, Box::leak(Box::new([Layer::EMPTY; MAX_LAYERS])))
    }

    #[test]
    fn loads_hparams_and_views_of_every_matrix_type() {
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0] {
            let blob = Spec::gpt2(ty.to_u32()).build();
            let m = load(&blob).unwrap();
            let hp = m.hparams;
            assert_eq!(
                (hp.n_vocab, hp.n_ctx, hp.n_embd, hp.n_head, hp.n_layer, hp.n_ff, hp.eos_token),
                (40, 8, 32, 2, 2, 64, Some(39))
            );
            assert_eq!(hp.head_dim(), 16);
            assert_eq!(m.wte.ty, ty);
            assert_eq!((m.wte.n_in, m.wte.n_out), (32, 40));
            // Tied output: lm_head is wte itself, the same bytes.
            assert_eq!(m.lm_head, m.wte);
            let l1 = m.layer(1).unwrap();
            assert_eq!((l1.c_attn.weight.n_in, l1.c_attn.weight.n_out), (32, 96));
            assert_eq!((l1.mlp_c_proj.weight.n_in, l1.mlp_c_proj.weight.n_out), (64, 32));
            assert_eq!(l1.c_fc.bias.len(), 64);
            // Views point into the blob, not at copies.
            let base = blob.as_ptr() as usize;
            let p = m.wte.data.as_ptr() as usize;
            assert!(p >= base && p < base + blob.len());
        }
    }

    #[test]
    fn dequantized_rows_match_across_types() {
        let (f32_blob, q_blob) = (Spec::gpt2(0).build(), Spec::gpt2(8).build());
        let (a, b) = (load(&f32_blob).unwrap(), load(&q_blob).unwrap());
        let (mut ra, mut rb) = ([0.0f32; 32], [0.0f32; 32]);
        assert!(a.wte.row_to_f32(&mut ra, 5));
        assert!(b.wte.row_to_f32(&mut rb, 5));
        for (x, y) in ra.iter().zip(&rb) {
            assert!((x - y).abs() < 1.0 / 127.0 + 1e-3, "{x} vs {y}");
        }
        assert!(!a.wte.row_to_f32(&mut ra, 40));
    }

    #[test]
    fn uses_output_weight_when_present() {
        let mut spec = Spec::gpt2(0);
        let wte = spec.tensor("token_embd.weight");
        let (dims, data) = (wte.dims.clone(), wte.data.iter().map(|b| b ^ 1).collect());
        spec.tensors.push(super::test_model::Tensor {
            name: "output.weight".into(),
            dims,
            ty: 0,
            data,
        });
        let blob = spec.build();
        let m = load(&blob).unwrap();
        assert_ne!(m.lm_head, m.wte);
    }

    #[test]
    fn rejects_missing_tensor_by_name() {
        let blob = Spec::gpt2(0).without("blk.1.ffn_up.bias").build();
        match load(&blob) {
            Err(ModelError::Gguf(GgufError::MissingTensor { name })) => {
                assert_eq!(name.as_str(), "blk.1.ffn_up.bias")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_misshaped_tensor_naming_both_shapes() {
        let mut spec = Spec::gpt2(0);
        let t = spec.tensor("blk.0.attn_output.weight");
        t.dims = vec![16, 64];
        let blob = spec.build();
        let err = load(&blob).unwrap_err();
        assert_eq!(
            err,
            ModelError::BadShape {
                name: name_of("blk.0.attn_output.weight"),
                expected: [32, 32],
                found: [16, 64, 1, 1]
            }
        );
        assert_eq!(
            err.to_string(),
            "tensor \"blk.0.attn_output.weight\" has shape [16, 64], expected [32, 32]"
        );
    }

    #[test]
    fn rejects_vocab_that_disagrees_with_token_embedding() {
        let blob = Spec::gpt2(0)
            .set("tokenizer.ggml.tokens", Meta::Strs((0..41).map(|i| format!("t{i}")).collect()))
            .build();
        assert!(matches!(
            load(&blob),
            Err(ModelError::BadShape { expected: [32, 41], found: [32, 40, 1, 1], .. })
        ));
    }

    #[test]
    fn rejects_heads_that_do_not_divide_width() {
        let blob = Spec::gpt2(0).set("gpt2.attention.head_count", Meta::U32(3)).build();
        assert_eq!(
            load(&blob).unwrap_err(),
            ModelError::HeadsDoNotDivideWidth { n_embd: 32, n_head: 3 }
        );
    }

    #[test]
    fn rejects_zero_context_and_bad_epsilon() {
        let blob = Spec::gpt2(0).set("gpt2.context_length", Meta::U32(0)).build();
        assert_eq!(
            load(&blob).unwrap_err(),
            ModelError::BadHParam { key: "gpt2.context_length", value: 0 }
        );
        let blob = Spec::gpt2(0).set("gpt2.attention.layer_norm_epsilon", Meta::F32(-1.0)).build();
        assert_eq!(load(&blob).unwrap_err(), ModelError::BadEpsilon { value: -1.0 });
    }

    #[test]
    fn layer_views_are_the_tensors_named_for_each_block() {
        let blob = Spec::gpt2(8).build();
        let g = Gguf::parse(&blob).unwrap();
        let mut storage = [Layer::EMPTY; 2];
        let m = Model::load(&g, &mut storage).unwrap();
        assert_eq!(m.layers().len(), 2);
        for (l, w) in m.layers().iter().enumerate() {
            let qkv = g.tensor(&format!("blk.{l}.attn_qkv.weight")).unwrap();
            let down_b = g.tensor(&format!("blk.{l}.ffn_down.bias")).unwrap();
            assert_eq!(w.c_attn.weight.data.as_ptr(), qkv.data.as_ptr());
            assert_eq!(w.mlp_c_proj.bias.data.as_ptr(), down_b.data.as_ptr());
            assert_eq!(m.layer(l).unwrap(), *w);
        }
        assert_eq!(
            m.layer(2).unwrap_err(),
            ModelError::Gguf(GgufError::MissingTensor { name: name_of("blk.2.attn_norm.weight") })
        );
    }

    #[test]
    fn rejects_more_blocks_than_max_layers() {
        let blob = Spec::gpt2(0).set("gpt2.block_count", Meta::U32(MAX_LAYERS as u32 + 1)).build();
        let err = load(&blob).unwrap_err();
        assert_eq!(err, ModelError::TooManyLayers { n_layer: MAX_LAYERS + 1, max: MAX_LAYERS });
        assert_eq!(err.to_string(), "the model has 49 blocks; mote runs at most 48");
    }

    #[test]
    fn tensor_names_are_llama_cpp_s() {
        assert_eq!(tensor_name(Some(0), "attn_qkv", "weight").as_str(), "blk.0.attn_qkv.weight");
        assert_eq!(tensor_name(Some(47), "ffn_up", "bias").as_str(), "blk.47.ffn_up.bias");
        assert_eq!(tensor_name(Some(1230), "ffn_up", "bias").as_str(), "blk.1230.ffn_up.bias");
        assert_eq!(tensor_name(None, "output_norm", "weight").as_str(), "output_norm.weight");
    }

    #[test]
    fn rejects_more_blocks_than_the_storage_holds() {
        let blob = Spec::gpt2(0).build();
        let g = Gguf::parse(&blob).unwrap();
        let mut storage = [Layer::EMPTY; 1];
        let err = Model::load(&g, &mut storage).unwrap_err();
        assert_eq!(err, ModelError::TooManyLayers { n_layer: 2, max: 1 });
    }

    #[test]
    fn rejects_eos_outside_vocabulary() {
        let blob = Spec::gpt2(0).set("tokenizer.ggml.eos_token_id", Meta::U32(40)).build();
        assert_eq!(load(&blob).unwrap_err(), ModelError::EosOutOfRange { eos: 40, n_vocab: 40 });
    }

    #[test]
    fn rejects_other_architectures() {
        let blob = Spec::gpt2(0).set("general.architecture", Meta::Str("llama")).build();
        assert_eq!(
            load(&blob).unwrap_err(),
            ModelError::WrongArchitecture { found: name_of("llama") }
        );
    }

    #[test]
    fn rejects_vectors_that_are_not_f32() {
        let mut spec = Spec::gpt2(0);
        let t = spec.tensor("output_norm.bias");
        t.ty = 1;
        t.data.truncate(64);
        let blob = spec.build();
        assert_eq!(
            load(&blob).unwrap_err(),
            ModelError::VectorNotF32 { name: name_of("output_norm.bias"), ty: GgmlType::F16 }
        );
    }

    #[test]
    fn multiplies_q8_0_only_when_every_product_is_q8_0() {
        let blob = Spec::gpt2(GgmlType::Q8_0.to_u32()).build();
        assert!(load(&blob).unwrap().multiplies_q8_0_only());
        for ty in [GgmlType::F32, GgmlType::F16] {
            let blob = Spec::gpt2(ty.to_u32()).build();
            assert!(!load(&blob).unwrap().multiplies_q8_0_only(), "{ty:?}");
        }
        let e = ModelError::ProductNotBuilt { name: name_of("output.weight"), ty: GgmlType::F16 };
        let text = e.to_string();
        assert!(text.contains("\"output.weight\" has type F16") && text.contains("Q8_0"), "{text}");
    }

    #[test]
    fn rejects_unsupported_tensor_type() {
        let mut spec = Spec::gpt2(0);
        let t = spec.tensor("blk.0.ffn_up.weight");
        t.ty = 2; // Q4_0: blocks of 32 elements in 18 bytes
        let n: u64 = t.dims.iter().product();
        t.data.truncate(n as usize / 32 * 18);
        let blob = spec.build();
        // The file parses (so it can be inspected); loading it as a model names the type and the
        // two ways to Q8_0.
        assert!(Gguf::parse(&blob).is_ok());
        let e = load(&blob).unwrap_err();
        assert!(matches!(e, ModelError::Gguf(GgufError::UnsupportedTensorType { ty: 2, .. })));
        let text = e.to_string();
        assert!(text.contains("Q4_0") && text.contains("--type q8_0"), "{text}");
        assert!(text.contains("llama-quantize"), "{text}");
    }

    #[test]
    fn rejects_truncated_tensor_data() {
        let mut blob = Spec::gpt2(0).build();
        blob.truncate(blob.len() - 1);
        assert!(matches!(load(&blob), Err(ModelError::Gguf(GgufError::DataOutOfBounds { .. }))));
    }
}

//! # mote-core: GPT-2 on a microcontroller, with no heap
//!
//! Fixed capacity, no allocation: every byte this crate touches is either the model blob it borrows
//! (a GGUF file in flash, or memory-mapped on a desktop) or storage the caller hands in, sized by
//! `const`-computable functions of the model's hyper-parameters. Nothing here allocates, and nothing
//! read from a file or a prompt can make it panic: malformed input is a typed error.
//!
//! The crate is `no_std` and runs the same code on x86_64 and Cortex-M. Floating-point functions go
//! through `libm`, never the platform's, so a model and a prompt give bit-identical results on every
//! target. The optional `std` feature (the desktop crate's, never the firmware's) adds run-time CPU
//! detection, to pick the AVX2 Q8_0 kernel on x86_64, and batched prefill in [`session::Session`];
//! both give the same bits as the portable, per-token path.
//!
//! Modules, one concept each:
//! - [`gguf`]: a zero-copy GGUF reader (header, metadata, tensor infos, tensor views).
//! - [`quant`]: Q8_0 blocks, rows of them ([`quant::Q8Rows`]), and the quantize/dequantize helpers
//!   shared by the converter, the forward pass and the KV cache.
//! - [`model`]: hyper-parameters (plain data) and weights (views into the GGUF blob).
//! - [`fixed`]: fixed-point helpers (rounding shifts, saturation, exp, tanh, rsqrt, softmax) for
//!   the integer-only path.
//! - [`ops`]: the kernels, free functions on slices: matrix-vector products, layer norm, GELU, softmax.
//! - [`kv_cache`]: the keys and values of every position so far, in q8_0, f16 or f32.
//! - `attention`: causal self-attention of one position over the KV cache.
//! - [`state`]: the run state (KV cache, activations, logits) in caller-provided storage of a size
//!   known before running; `arena` carves it, `activations` are the buffers of one pass.
//! - [`integer`]: the same forward pass in integers only ([`Math::Integer`]), for cores with no FPU.
//! - [`forward`]: the GPT-2 block over one or more positions, reading like the math.
//! - [`prefill`]: the prompt's positions as one batch, matrix-matrix work (desktop only: the
//!   batch buffers are a separate, optional storage).
//! - [`session`]: prefill, decode and stop rules; tokens streamed to a callback.
//! - [`beam`]: beam search over `N` beams (transformers' `num_beams`), the KV cache shared through
//!   per-beam position maps.
//! - [`split`]: how a matrix product's rows divide over threads, for the desktop to run.
//! - [`sampler`]: greedy, or transformers' sampling controls with a seeded generator.
//! - [`tokenizer`]: GPT-2 byte-level BPE, encode and decode, from the GGUF vocabulary.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_code)]
// The firmware's largest loading helpers optimised for size inside a build for speed; the attribute
// is unstable: see the `optimize-size` feature.
#![cfg_attr(feature = "optimize-size", feature(optimize_attribute))]
// No panics outside tests: every failure is a typed error (see docs/robustness.md). The modules
// that read bytes from outside (gguf, tokenizer, model) also deny unchecked indexing and
// arithmetic that can overflow.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
#![warn(missing_docs)]

mod activations;
mod arena;
mod attention;
pub mod beam;
pub mod fixed;
pub mod forward;
pub mod gguf;
pub mod integer;
pub mod kv_cache;
pub mod model;
pub mod ops;
pub mod prefill;
pub mod quant;
pub mod sampler;
pub mod session;
pub mod split;
pub mod state;
pub mod tokenizer;

pub use integer::Math;

/// The version of this crate, as the firmware and the CLI report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

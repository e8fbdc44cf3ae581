//! # mote-core: GPT-2 on a microcontroller, with no heap
//!
//! Fixed capacity, no allocation: every byte this crate touches is either the model blob it borrows
//! (a GGUF file in flash, or memory-mapped on a desktop) or storage the caller hands in, sized by
//! `const`-computable functions of the model's hyper-parameters. Nothing here allocates, and nothing
//! read from a file or a prompt can make it panic: malformed input is a typed error.
//!
//! The crate is `no_std` and runs the same code on x86_64 and Cortex-M. Floating-point functions go
//! through `libm`, never the platform's, so a model and a prompt give bit-identical results on every
//! target.
//!
//! Modules, one concept each:
//! - [`gguf`]: a zero-copy GGUF reader (header, metadata, tensor infos, tensor views).
//! - [`quant`]: Q8_0 blocks and the quantize/dequantize helpers shared by the converter, the forward
//!   pass and the KV cache.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod gguf;
pub mod quant;

/// The version of this crate, as the firmware and the CLI report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

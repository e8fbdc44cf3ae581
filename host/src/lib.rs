//! The desktop side of mote as a library, so that end-to-end tests and tools can call the same code
//! as the `mote` binary: the GGUF writer, the converter, and each subcommand.

pub mod bench;
pub mod convert;
pub mod eval;
pub mod generate;
pub mod gguf_writer;
pub mod inspect;
pub mod model_file;
pub mod threads;
pub mod tokenize;
pub mod tokenizer_index;

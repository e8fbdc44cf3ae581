//! The desktop side of mote as a library, so that end-to-end tests and tools can call the same code
//! as the `mote` binary: the converter (with its GGUF writer), and each subcommand.

pub mod bench;
pub mod convert;
pub mod eval;
pub mod generate;
pub mod input;
pub mod inspect;
pub mod model_file;
pub mod progress;
pub mod threads;
pub mod tokenize;

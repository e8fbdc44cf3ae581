//! Turns the one `board-<name>` feature into everything the linker and the code need to know about
//! that board, taken from `../boards.toml` (read by the `mote-boards` crate, as the host tool and
//! xtask read it) rather than repeated by hand, and checks the generating binaries' model, prompt
//! and settings at build time, so that a build the board cannot run stops here with the reason.
//!
//! Its jobs, one module each:
//! - [`board`]: pick the board, check the triple and the defmt transport, write `board.rs`;
//! - [`memory_x`]: check `boards/<name>/memory.x` against boards.toml and hand it to the linker;
//! - [`inputs`]: read the build's `MOTE_*` variables, once;
//! - [`generate`]: parse the model, encode the prompt, check the memory plan, write `generate.rs`;
//! - [`chat`]: the same for the `chat` binary's buffers, write `chat.rs`.

use std::env;
use std::path::PathBuf;

use mote_boards::Boards;

mod board;
mod chat;
mod generate;
mod inputs;
mod memory_x;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let boards_toml = manifest_dir.join("../boards.toml");
    println!("cargo:rerun-if-changed={}", boards_toml.display());
    println!("cargo:rerun-if-changed=build");

    let boards = Boards::load(&boards_toml).unwrap_or_else(|e| fail(e.to_string()));
    let board = &board::with_math(board::selected(&boards));
    board::check_target(board);
    board::check_transport(board);
    board::check_math(board);
    memory_x::install(&manifest_dir, &out_dir, board);
    board::write(&out_dir, board);

    let inputs = inputs::Inputs::from_env(&manifest_dir).unwrap_or_else(|e| fail(e));
    let generate_rs = match generate::check(&inputs, board, boards.budgets) {
        Ok(build) => build.rust(),
        // Only the generating binaries include this file: hello still builds for a board too small
        // for the model, and `generate` fails to compile with the reason.
        Err(message) => format!("compile_error!({message:?});\n"),
    };
    std::fs::write(out_dir.join("generate.rs"), generate_rs).unwrap();
    let chat_rs = match chat::check(&inputs, board, boards.budgets) {
        Ok(rs) => rs,
        Err(message) => format!("compile_error!({message:?});\n"),
    };
    std::fs::write(out_dir.join("chat.rs"), chat_rs).unwrap();
}

/// Stops the build with `message`; cargo shows it under the build script's stderr.
fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

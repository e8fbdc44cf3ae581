//! `mote`: convert Hugging Face GPT-2 checkpoints to GGUF, inspect a model and whether it fits a board,
//! generate text, evaluate perplexity, measure speed, tokenize.

use clap::{Parser, Subcommand};

use mote::{bench, convert, eval, generate, inspect, tokenize};

#[derive(Parser)]
#[command(name = "mote", version, about = "GPT-2 on microcontrollers: the desktop tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a Hugging Face GPT-2 checkpoint directory to GGUF.
    Convert(convert::Args),
    /// Show a GGUF model's metadata, tensors and memory plan, and whether it fits a board.
    Inspect(inspect::Args),
    /// Generate text from a prompt.
    Generate(generate::Args),
    /// Perplexity of a model on a text file.
    Eval(eval::Args),
    /// Prompt and decode tokens/s on this machine, next to llama.cpp's when llama-bench is found.
    Bench(bench::Args),
    /// Text to token ids.
    Tokenize(tokenize::TokenizeArgs),
    /// Token ids to text.
    Detokenize(tokenize::DetokenizeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(a) => convert::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Tokenize(a) => tokenize::run_tokenize(a),
        Command::Detokenize(a) => tokenize::run_detokenize(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

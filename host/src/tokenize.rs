//! `mote tokenize` and `mote detokenize` (work in progress on its own branch).

/// Arguments of `mote tokenize`.
#[derive(clap::Args)]
pub struct TokenizeArgs {}

/// Arguments of `mote detokenize`.
#[derive(clap::Args)]
pub struct DetokenizeArgs {}

/// Runs `mote tokenize`.
pub fn run_tokenize(_args: TokenizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("mote tokenize is not built yet")
}

/// Runs `mote detokenize`.
pub fn run_detokenize(_args: DetokenizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("mote detokenize is not built yet")
}

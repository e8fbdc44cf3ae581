//! `mote generate` (work in progress on its own branch).

/// Arguments of `mote generate`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `mote generate`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("mote generate is not built yet")
}

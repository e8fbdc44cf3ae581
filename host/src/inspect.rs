//! `mote inspect` (work in progress on its own branch).

/// Arguments of `mote inspect`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `mote inspect`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("mote inspect is not built yet")
}

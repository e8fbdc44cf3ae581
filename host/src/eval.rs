//! `mote eval` (work in progress on its own branch).

/// Arguments of `mote eval`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `mote eval`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("mote eval is not built yet")
}

//! `mote convert` (work in progress on its own branch).

/// Arguments of `mote convert`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `mote convert`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("mote convert is not built yet")
}

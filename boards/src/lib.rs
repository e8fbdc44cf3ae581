//! # mote-boards: one reading of boards.toml, one memory plan
//!
//! Every part of mote that needs to know a board or size a model for one goes through this crate:
//! the host tool (`mote inspect --board`), `cargo xtask` (builds, QEMU runs, `size`) and the
//! firmware's build script (which refuses a build that does not fit). So the schema of
//! `boards.toml`, the rule that picks the device's KV type, the flash and RAM sums and the
//! firmware's build-time defaults are written once, and the three cannot drift apart.

mod plan;
mod schema;

pub use plan::{device_kv, kv_fits, Fit, Plan};
pub use schema::{Board, Boards, Budgets, Error, Math, Qemu, Region, Transport};

/// `boards.toml` as it was when this crate was built, for tools run away from the repository.
pub const BOARDS_TOML: &str = include_str!("../../boards.toml");

/// The prompt the generating firmware uses when the build is given none (`MOTE_PROMPT`).
pub const DEFAULT_PROMPT: &str = "Once upon a time";
/// The model the generating firmware embeds when the build is given none (`MOTE_MODEL`), relative
/// to the repository root.
pub const DEFAULT_MODEL: &str = "models/tinystories-675k/tinystories-675k-q8_0.gguf";
/// Tokens the generating firmware produces when the build sets no `MOTE_MAX_TOKENS` (as many as
/// `mote generate` produces by default).
pub const DEFAULT_MAX_TOKENS: u32 = 64;

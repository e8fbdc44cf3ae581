//! Reading a subcommand's input file, where `-` means standard input (`generate --prompt-file`,
//! `eval --text`, `tokenize --file`).

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;

/// The path that stands for standard input.
pub const STDIN: &str = "-";

/// The bytes of `path`, or of standard input when `path` is `-`; `what` names the input in errors.
pub fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == STDIN {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {what} from standard input"))?;
        return Ok(bytes);
    }
    std::fs::read(path)
        .with_context(|| format!("cannot read {what} {}: check the path", path.display()))
}

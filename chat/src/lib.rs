//! # mote-chat: prompts typed on a serial console, answered by mote-core
//!
//! Fixed capacity, no allocation, no panic on anything typed: every buffer (the line, the prompt's
//! ids, the tokenizer's scratch, the run state) is handed in by the caller, sized at build time,
//! and every bad line gets one `error:` line and leaves the loop running.
//!
//! The console is any blocking byte stream with [`embedded_io::Read`] and [`embedded_io::Write`]:
//! a UART driver on the device, a HAL's serial type on a user's own board, a buffer in a test.
//!
//! The conversation, line by line:
//! - a line is a prompt (UTF-8). It is encoded, generated from a fresh context with the current
//!   settings, its text streamed as tokens decode, then one `summary:` line that equals the
//!   `generate` firmware's (and so `mote generate --json`'s fields), then the prompt marker;
//! - a line that begins with `/` is a command ([`command`]): it changes a setting until it is
//!   changed again, or prints the settings or the help.
//!
//! Modules, one concept each:
//! - [`line`]: lines from a byte stream into a fixed buffer; an over-long line is discarded whole;
//! - [`command`]: the `/` commands and the settings they change, validated as `mote generate`
//!   validates its flags;
//! - [`chat`]: the loop: read, interpret, encode, generate, stream, summarise.
//!
//! With the `beams` feature (on by default) a reply can be a beam search (`/beams N`, up to what
//! the storage given to [`Chat::new`] holds); without it the chat carries none of its code.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

pub mod chat;
pub mod command;
pub mod line;

pub use chat::{Chat, ChatError, Observer, Reply, PROMPT_MARKER};
pub use command::Settings;
pub use line::{Input, LineReader};

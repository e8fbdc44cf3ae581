//! The loop: read a line, interpret it, answer it.
//!
//! A prompt is encoded on the device (mote-core's tokenizer and [`BpeScratch`]), generated from
//! position 0 with a sampler made afresh from the current settings (so a seed gives the same
//! reply every time, as `mote generate --seed` does), its text written as each token decodes
//! ([`StreamDecoder`] holds back a character split across tokens until it is whole), then the
//! summary line of the `generate` firmware:
//!
//! `summary: kv=q8_0 prompt=[..] generated=[..] stop=".." logits_checksum=0x........`
//!
//! then [`PROMPT_MARKER`]. Anything refused gets one line `error: ...` and then the marker: one
//! marker per line read, which is how a script knows a reply has ended.

use core::fmt::{self, Write as _};

use embedded_io::{Read, Write};
use mote_core::model::Model;
use mote_core::sampler::Sampler;
use mote_core::session::{logits_checksum, Session, StopReason};
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::{BpeScratch, Special, StreamDecoder, Tokenizer, TokenizerError};

use crate::command::{self, Command, Settings, HELP};
use crate::line::{Input, LineReader};

/// Printed when the next line is awaited (after the banner and after every reply).
pub const PROMPT_MARKER: &str = "> ";

/// Hooks for the firmware's own logging and timing; every method does nothing by default.
pub trait Observer {
    /// A line (or an over-long line's end) has been received.
    fn line_received(&mut self) {}
    /// Token `index` (from 0) of the reply, `id`, was chosen; its text is written next.
    fn token(&mut self, _index: usize, _id: u32) {}
    /// A reply has been generated (its summary line is written next).
    fn reply(&mut self, _reply: &Reply<'_>) {}
}

/// No logging, no timing.
impl Observer for () {}

/// One answered prompt, as its summary line states it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reply<'a> {
    /// The prompt's token ids.
    pub prompt: &'a [u32],
    /// The generated token ids.
    pub generated: &'a [u32],
    /// Why generation stopped.
    pub stop: StopReason,
    /// [`logits_checksum`] of the last logits computed.
    pub logits_checksum: u32,
}

/// Why a [`Chat`] cannot be made from the buffers given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChatError {
    /// The id buffer must hold a full context and one more id.
    IdsTooShort {
        /// Its length.
        len: usize,
        /// `n_ctx + 1`.
        needed: usize,
    },
    /// The run state was sized for other hyper-parameters than the model's.
    StateMismatch,
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IdsTooShort { len, needed } => {
                write!(f, "the id buffer holds {len} ids; a full context and a reply need {needed}")
            }
            Self::StateMismatch => write!(f, "the run state was sized for another model"),
        }
    }
}

impl core::error::Error for ChatError {}

/// A model, its tokenizer and the buffers of one conversation.
pub struct Chat<'m, 'b, 's> {
    model: &'m Model<'b>,
    tokenizer: &'m Tokenizer<'b>,
    session: Session<'m, 'b, 's>,
    kv: KvType,
    scratch: &'s mut BpeScratch,
    /// The prompt's ids, then the reply's: `n_ctx + 1` (a prompt of `P` tokens leaves room for
    /// at most `n_ctx - P + 1` generated ones).
    ids: &'s mut [u32],
    settings: Settings,
}

impl<'m, 'b, 's> Chat<'m, 'b, 's> {
    /// A conversation with the default settings (greedy, [`command::DEFAULT_MAX_TOKENS`]).
    /// `ids` holds at least `n_ctx + 1` ids.
    pub fn new(
        model: &'m Model<'b>,
        tokenizer: &'m Tokenizer<'b>,
        state: RunState<'s>,
        scratch: &'s mut BpeScratch,
        ids: &'s mut [u32],
    ) -> Result<Self, ChatError> {
        let n_ctx = model.hparams.n_ctx;
        let needed = n_ctx.saturating_add(1);
        if ids.len() < needed {
            return Err(ChatError::IdsTooShort { len: ids.len(), needed });
        }
        if *state.hparams() != model.hparams {
            return Err(ChatError::StateMismatch);
        }
        let kv = state.kv_type();
        Ok(Self {
            model,
            tokenizer,
            session: Session::new(model, state),
            kv,
            scratch,
            ids,
            settings: Settings::new(n_ctx),
        })
    }

    /// The current settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Prints the marker, then answers every line of `io` until it ends (a device's console never
    /// does). Only an error of `io` itself stops it.
    pub fn run<IO: Read + Write>(
        &mut self,
        lines: &mut LineReader<'_>,
        io: &mut IO,
        observer: &mut impl Observer,
    ) -> Result<(), IO::Error> {
        io.write_all(PROMPT_MARKER.as_bytes())?;
        io.flush()?;
        loop {
            let input = lines.read_line(io)?;
            if input == Input::End {
                return Ok(());
            }
            observer.line_received();
            self.respond(input, io, observer)?;
            io.write_all(PROMPT_MARKER.as_bytes())?;
            io.flush()?;
        }
    }

    /// Answers one line: a reply, a command's output or one error line.
    pub fn respond<W: Write>(
        &mut self,
        input: Input<'_>,
        out: &mut W,
        observer: &mut impl Observer,
    ) -> Result<(), W::Error> {
        let bytes = match input {
            Input::Line(bytes) => bytes,
            Input::TooLong { capacity } => {
                return error(
                    out,
                    format_args!(
                    "the line is longer than the {capacity}-byte input buffer; it was discarded"
                ),
                );
            }
            Input::End => return Ok(()),
        };
        let text = match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                return error(
                    out,
                    format_args!(
                        "the line is not UTF-8 (bad byte at offset {}); it was discarded",
                        e.valid_up_to()
                    ),
                );
            }
        };
        if text.starts_with('/') {
            self.command(text, out)
        } else {
            self.prompt(text, out, observer)
        }
    }

    fn command<W: Write>(&mut self, text: &str, out: &mut W) -> Result<(), W::Error> {
        let n_ctx = self.model.hparams.n_ctx;
        let changed = match command::parse(text) {
            Err(e) => return error(out, format_args!("{e}")),
            Ok(Command::Help) => return out.write_all(HELP.as_bytes()),
            Ok(Command::Show) => self.settings,
            Ok(Command::Greedy) => {
                Settings { max_tokens: self.settings.max_tokens, ..Settings::new(n_ctx) }
            }
            Ok(Command::Set(setting, value)) => match self.settings.with(setting, value, n_ctx) {
                Ok(s) => s,
                Err(e) => return error(out, format_args!("{e}")),
            },
        };
        self.settings = changed;
        line(out, format_args!("settings: {}", self.settings))
    }

    fn prompt<W: Write>(
        &mut self,
        text: &str,
        out: &mut W,
        observer: &mut impl Observer,
    ) -> Result<(), W::Error> {
        let n_ctx = self.model.hparams.n_ctx;
        let Self { tokenizer, session, scratch, ids, settings, kv, .. } = self;
        let room = ids.get_mut(..n_ctx).unwrap_or(&mut []);
        let n_prompt = match tokenizer.encode(text, Special::AsText, scratch, room) {
            Ok(0) => {
                return error(out, format_args!("the prompt encodes to no tokens; type some text"))
            }
            Ok(n) => n,
            Err(TokenizerError::OutputFull { .. }) => {
                return error(
                    out,
                    format_args!("the prompt has more tokens than the context holds ({n_ctx})"),
                );
            }
            Err(e) => return error(out, format_args!("the prompt cannot be encoded: {e}")),
        };
        // The reply's ids follow the prompt's: at most `n_ctx - n_prompt + 1` of them.
        let (prompt, reply_ids) = ids.split_at_mut(n_prompt.min(ids.len()));
        let prompt = &*prompt;
        // The commands keep the settings valid, so this refusal cannot happen; its message does
        // not format the values (see `command::CommandError::Sampler`).
        let Ok(mut sampler) = Sampler::new(settings.sampler, n_ctx) else {
            return error(
                out,
                format_args!("the sampler settings are invalid; /greedy resets them"),
            );
        };

        let mut stream = StreamDecoder::new();
        let mut sink = Sink { out: &mut *out, err: None };
        let mut n = 0usize;
        let outcome = session.generate_with(prompt, settings.max_tokens, &mut sampler, |id| {
            if let Some(slot) = reply_ids.get_mut(n) {
                *slot = id;
            }
            observer.token(n, id);
            n = n.saturating_add(1);
            // An id outside the vocabulary cannot come out of the model; it would add no text.
            let _ = tokenizer.decode_stream(id, &mut stream, &mut |piece| sink.write(piece));
            sink.flush();
        });
        stream.finish(&mut |piece| sink.write(piece));
        sink.write("\n");
        sink.done()?;
        let done = match outcome {
            Ok(done) => done,
            Err(e) => return error(out, format_args!("generation failed: {e}")),
        };
        let reply = Reply {
            prompt,
            generated: reply_ids.get(..n).unwrap_or(reply_ids),
            stop: done.stop,
            logits_checksum: logits_checksum(session.logits()),
        };
        observer.reply(&reply);
        line(
            out,
            format_args!(
                "summary: kv={} prompt={:?} generated={:?} stop=\"{}\" logits_checksum={:#010x}",
                kv.name(),
                reply.prompt,
                reply.generated,
                reply.stop,
                reply.logits_checksum
            ),
        )
    }
}

/// Writes `args` and a line end.
fn line<W: Write>(out: &mut W, args: fmt::Arguments<'_>) -> Result<(), W::Error> {
    let mut sink = Sink { out, err: None };
    let _ = sink.write_fmt(args);
    sink.write("\n");
    sink.done()
}

/// Writes one error line.
fn error<W: Write>(out: &mut W, args: fmt::Arguments<'_>) -> Result<(), W::Error> {
    line(out, format_args!("error: {args}"))
}

/// A writer that keeps the first I/O error and writes nothing after it: the generation callback
/// and `core::fmt` cannot return the console's error type.
struct Sink<'w, W: Write> {
    out: &'w mut W,
    err: Option<W::Error>,
}

impl<W: Write> Sink<'_, W> {
    fn write(&mut self, text: &str) {
        if self.err.is_none() {
            if let Err(e) = self.out.write_all(text.as_bytes()) {
                self.err = Some(e);
            }
        }
    }

    fn flush(&mut self) {
        if self.err.is_none() {
            if let Err(e) = self.out.flush() {
                self.err = Some(e);
            }
        }
    }

    fn done(self) -> Result<(), W::Error> {
        match self.err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<W: Write> fmt::Write for Sink<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write(s);
        Ok(())
    }
}

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
//!
//! With more than one beam (`/beams N`) nothing is known before the search ends: the reply is the
//! best sequence's text, or, with `/num-return-sequences K` above 1, the K best numbered as
//! `mote generate` prints them (`1 (score -0.1234): text`), then the summary line with the best
//! sequence as `generated`. The storage the chat is given is a run state for one beam and a
//! [`BeamSearch`] for more, carved afresh for each reply; how many beams it holds at the full
//! context is fixed when the chat is made ([`beam_capacity`]).

use core::fmt::{self, Write as _};

use embedded_io::{Read, Write};
use mote_core::beam::{BeamSearch, MAX_BEAMS};
use mote_core::model::{HParams, Model};
use mote_core::sampler::Sampler;
use mote_core::session::{logits_checksum, Session, Stops};
use mote_core::state::{KvType, RunState, StateError};
use mote_core::tokenizer::{BpeScratch, Special, StreamDecoder, Tokenizer, TokenizerError};
use mote_core::Math;

use crate::command::{self, Command, Limits, Settings, HELP};
use crate::line::{Input, LineReader};

/// Printed when the next line is awaited (after the banner and after every reply).
pub const PROMPT_MARKER: &str = "> ";

/// Hooks for the firmware's own logging and timing; every method does nothing by default.
pub trait Observer {
    /// A line (or an over-long line's end) has been received.
    fn line_received(&mut self) {}
    /// Token `index` (from 0) of the reply, `id`, was chosen; its text is written next (one
    /// beam only: a beam search's tokens are known when it ends).
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
    /// The generated token ids (with beams, the best sequence's).
    pub generated: &'a [u32],
    /// Why generation stopped, in `mote generate --json`'s words.
    pub stop: &'static str,
    /// [`logits_checksum`] of the last logits computed.
    pub logits_checksum: u32,
    /// Beams (1: none).
    pub beams: usize,
    /// Decoding steps: tokens generated, or with beams the positions the search chose.
    pub steps: usize,
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
    /// The storage cannot hold a run state for the model.
    State(StateError),
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IdsTooShort { len, needed } => {
                write!(f, "the id buffer holds {len} ids; a full context and a reply need {needed}")
            }
            Self::State(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for ChatError {}

/// The most beams a beam search over `hp` with a `kv` cache holds at the full context in
/// `bytes` of storage: 1 (no beam search) below [`BeamSearch::bytes_needed`] of 2 beams, or
/// without the `beams` feature.
pub fn beam_capacity(hp: &HParams, kv: KvType, bytes: usize) -> usize {
    if !cfg!(feature = "beams") {
        return 1;
    }
    let two = BeamSearch::bytes_needed(hp, kv, 2);
    if bytes < two {
        return 1;
    }
    // Each beam from the second on adds the same bytes; the loop only guards that rule.
    let per = BeamSearch::bytes_per_beam(hp, kv).max(1);
    let mut n = (2 + (bytes - two) / per).min(MAX_BEAMS);
    while n > 1 && BeamSearch::bytes_needed(hp, kv, n) > bytes {
        n -= 1;
    }
    n
}

/// A model, its tokenizer and the buffers of one conversation.
pub struct Chat<'m, 'b, 's> {
    model: &'m Model<'b>,
    tokenizer: &'m Tokenizer<'b>,
    /// A run state's bytes, or a beam search's: carved afresh for each reply.
    storage: &'s mut [u8],
    kv: KvType,
    /// The forward pass's arithmetic ([`Chat::with_math`]).
    math: Math,
    /// The most beams `storage` holds ([`beam_capacity`]).
    max_beams: usize,
    scratch: &'s mut BpeScratch,
    /// The prompt's ids, then the reply's: `n_ctx + 1` (a prompt of `P` tokens leaves room for
    /// at most `n_ctx - P + 1` generated ones).
    ids: &'s mut [u32],
    settings: Settings,
}

impl<'m, 'b, 's> Chat<'m, 'b, 's> {
    /// A conversation with the default settings (greedy, [`command::DEFAULT_MAX_TOKENS`]), its
    /// run state (or beam search) with a `kv` cache in `storage`: at least
    /// [`RunState::bytes_needed`] bytes, [`BeamSearch::bytes_needed`] for `/beams N` up to N.
    /// `ids` holds at least `n_ctx + 1` ids.
    pub fn new(
        model: &'m Model<'b>,
        tokenizer: &'m Tokenizer<'b>,
        kv: KvType,
        storage: &'s mut [u8],
        scratch: &'s mut BpeScratch,
        ids: &'s mut [u32],
    ) -> Result<Self, ChatError> {
        let hp = model.hparams;
        let needed = hp.n_ctx.saturating_add(1);
        if ids.len() < needed {
            return Err(ChatError::IdsTooShort { len: ids.len(), needed });
        }
        RunState::new(&hp, kv, storage).map_err(ChatError::State)?;
        let max_beams = beam_capacity(&hp, kv, storage.len());
        Ok(Self {
            model,
            tokenizer,
            storage,
            kv,
            math: Math::Float,
            max_beams,
            scratch,
            ids,
            settings: Settings::new(hp.n_ctx),
        })
    }

    /// The same conversation with every reply's forward pass in `math` (a device's: its board's
    /// `math`) instead of [`Math::Float`]: refused as [`RunState::new_math`] refuses it (the integer
    /// path with a KV cache other than Q8_0, or a path this build of mote-core leaves out). Beam
    /// search runs the float path only: with [`Math::Integer`], `/beams` above 1 answers an error.
    pub fn with_math(mut self, math: Math) -> Result<Self, ChatError> {
        RunState::new_math(&self.model.hparams, self.kv, math, self.storage)
            .map_err(ChatError::State)?;
        self.math = math;
        Ok(self)
    }

    /// The most beams `/beams` accepts: what the storage holds at the full context.
    pub fn max_beams(&self) -> usize {
        self.max_beams
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
        let limits = Limits { n_ctx, max_beams: self.max_beams };
        let changed = match command::parse(text) {
            Err(e) => return error(out, format_args!("{e}")),
            Ok(Command::Help) => return out.write_all(HELP.as_bytes()),
            Ok(Command::Show) => self.settings,
            // One beam, no sampling, no penalties; the token limit and the end-of-text rules stay.
            Ok(Command::Greedy) => {
                let mut greedy = Settings::new(n_ctx);
                greedy.max_tokens = self.settings.max_tokens;
                greedy.beams.min_new_tokens = self.settings.beams.min_new_tokens;
                greedy.ignore_eos = self.settings.ignore_eos;
                greedy
            }
            Ok(Command::Set(setting, value)) => match self.settings.with(setting, value, limits) {
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
        let Self { model, tokenizer, storage, scratch, ids, settings, kv, math, .. } = self;
        let model: &Model<'_> = model;
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
        let eos = if settings.ignore_eos { None } else { model.hparams.eos_token };
        let summary = if settings.is_beam_search() {
            if *math != Math::Float {
                return error(out, format_args!("beam search runs the float path only; /beams 1"));
            }
            let reply =
                beam_reply(model, tokenizer, *kv, storage, settings, eos, prompt, reply_ids, out);
            match reply? {
                Some(reply) => reply,
                // One error line was written.
                None => return Ok(()),
            }
        } else {
            // The commands keep the settings valid, so these refusals cannot happen; their
            // messages do not format the values (see `command::CommandError::Sampler`).
            let Ok(mut sampler) = Sampler::new(settings.sampler, n_ctx) else {
                return error(
                    out,
                    format_args!("the sampler settings are invalid; /greedy resets them"),
                );
            };
            let Ok(state) = RunState::new_math(&model.hparams, *kv, *math, storage) else {
                return error(out, format_args!("the run state does not fit its storage"));
            };
            let mut session = Session::new(model, state);
            let stops = Stops { eos, min_new_tokens: settings.beams.min_new_tokens };

            let mut stream = StreamDecoder::new();
            let mut sink = Sink { out: &mut *out, err: None };
            let mut n = 0usize;
            let outcome =
                session.generate_until(prompt, settings.max_tokens, &mut sampler, stops, |id| {
                    if let Some(slot) = reply_ids.get_mut(n) {
                        *slot = id;
                    }
                    observer.token(n, id);
                    n = n.saturating_add(1);
                    // An id outside the vocabulary cannot come out of the model; it would add
                    // no text.
                    let _ =
                        tokenizer.decode_stream(id, &mut stream, &mut |piece| sink.write(piece));
                    sink.flush();
                    false
                });
            stream.finish(&mut |piece| sink.write(piece));
            sink.write("\n");
            sink.done()?;
            let done = match outcome {
                Ok(done) => done,
                Err(e) => return error(out, format_args!("generation failed: {e}")),
            };
            Reply {
                prompt,
                generated: reply_ids.get(..n).unwrap_or(reply_ids),
                stop: done.stop.as_str(),
                logits_checksum: logits_checksum(session.logits()),
                beams: 1,
                steps: done.n_generated,
            }
        };
        observer.reply(&summary);
        line(
            out,
            format_args!(
                "summary: kv={} prompt={:?} generated={:?} stop=\"{}\" logits_checksum={:#010x}",
                kv.name(),
                summary.prompt,
                summary.generated,
                summary.stop,
                summary.logits_checksum
            ),
        )
    }
}

/// A beam search's reply: its text (the best sequence, or the K best numbered) written to `out`,
/// the best sequence's ids in `reply_ids`; `None` when an error line was written instead.
#[cfg(feature = "beams")]
#[allow(clippy::too_many_arguments)]
fn beam_reply<'r, W: Write>(
    model: &Model<'_>,
    tokenizer: &Tokenizer<'_>,
    kv: KvType,
    storage: &mut [u8],
    settings: &Settings,
    eos: Option<u32>,
    prompt: &'r [u32],
    reply_ids: &'r mut [u32],
    out: &mut W,
) -> Result<Option<Reply<'r>>, W::Error> {
    use mote_core::split::Serial;

    let Ok(mut search) = BeamSearch::new(&model.hparams, kv, settings.beams, storage) else {
        // The commands keep the beams within the storage and valid.
        error(out, format_args!("the beam search does not fit its storage"))?;
        return Ok(None);
    };
    let outcome =
        search.search(model, &Serial, prompt, settings.max_tokens, eos, &mut |_, _| false);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            error(out, format_args!("generation failed: {e}"))?;
            return Ok(None);
        }
    };
    let numbered = settings.beams.num_return_sequences > 1;
    let mut sink = Sink { out: &mut *out, err: None };
    let mut n = 0usize;
    for (i, h) in search.hypotheses().enumerate() {
        if i == 0 {
            for (slot, &id) in reply_ids.iter_mut().zip(h.tokens) {
                *slot = id;
            }
            n = h.tokens.len().min(reply_ids.len());
        }
        if numbered {
            let _ = write!(sink, "{} (score {}): ", i + 1, Score(h.score));
        }
        let mut stream = StreamDecoder::new();
        for &id in h.tokens {
            let _ = tokenizer.decode_stream(id, &mut stream, &mut |piece| sink.write(piece));
        }
        stream.finish(&mut |piece| sink.write(piece));
        sink.write("\n");
    }
    sink.done()?;
    let generated = reply_ids.get(..n).unwrap_or(&[]);
    // `mote generate`'s words: the end of text when the best sequence ends with it.
    let stop = if eos.is_some() && generated.last().copied() == eos {
        "end of text"
    } else {
        outcome.stop.as_str()
    };
    Ok(Some(Reply {
        prompt,
        generated,
        stop,
        logits_checksum: logits_checksum(search.logits()),
        beams: settings.beams.num_beams,
        steps: outcome.steps,
    }))
}

/// Without the `beams` feature the storage holds one beam, so the commands never ask for more.
#[cfg(not(feature = "beams"))]
#[allow(clippy::too_many_arguments)]
fn beam_reply<'r, W: Write>(
    _: &Model<'_>,
    _: &Tokenizer<'_>,
    _: KvType,
    _: &mut [u8],
    _: &Settings,
    _: Option<u32>,
    _: &'r [u32],
    _: &'r mut [u32],
    out: &mut W,
) -> Result<Option<Reply<'r>>, W::Error> {
    error(out, format_args!("this build has no beam search"))?;
    Ok(None)
}

/// A sequence's score with four decimals, as `mote generate` prints it (`{:.4}`: the exact value,
/// rounded half to even), without core::fmt's float formatting. Exact below 10^14 in magnitude;
/// larger values print in full ([`Decimal`]).
#[cfg(feature = "beams")]
struct Score(f32);

#[cfg(feature = "beams")]
impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if !x.is_finite() {
            return write!(f, "{}", crate::command::Decimal(x));
        }
        // x * 10^4 is exact in f64: a 24-bit mantissa times a 14-bit one.
        let scaled = f64::from(x).abs() * 10_000.0;
        if scaled >= 1e18 {
            return write!(f, "{}", crate::command::Decimal(x));
        }
        let whole = scaled as u64;
        let frac = scaled - whole as f64;
        let r = if frac > 0.5 || (frac == 0.5 && whole % 2 == 1) { whole + 1 } else { whole };
        let sign = if x.is_sign_negative() { "-" } else { "" };
        write!(f, "{sign}{}.{:04}", r / 10_000, r % 10_000)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "beams")]
    fn scores_print_as_generates_four_decimals() {
        let mut x = 1e-9f32;
        let mut values = vec![0.0f32, -0.0, 0.03125, 0.09375, -0.15625, 2.5e-5, -1e-6, -1e9, 1e13];
        while x < 1e13 {
            values.extend([x, -x, x * 1.37, -x * 0.61, f32::from_bits(x.to_bits() + 1)]);
            x *= 1.9;
        }
        for v in values {
            assert_eq!(Score(v).to_string(), format!("{v:.4}"), "{v:e}");
        }
    }

    #[test]
    #[cfg(feature = "beams")]
    fn beam_capacity_is_the_most_beams_the_storage_holds() {
        let hp = HParams {
            n_vocab: 512,
            n_ctx: 64,
            n_embd: 64,
            n_head: 2,
            n_layer: 2,
            n_ff: 256,
            eps: 1e-5,
            eos_token: None,
        };
        let kv = KvType::Q8_0;
        assert_eq!(beam_capacity(&hp, kv, RunState::bytes_needed(&hp, kv)), 1);
        for n in [2, 3, 7] {
            let bytes = BeamSearch::bytes_needed(&hp, kv, n);
            assert_eq!(beam_capacity(&hp, kv, bytes), n);
            assert_eq!(beam_capacity(&hp, kv, bytes - 1), n - 1);
        }
        assert_eq!(beam_capacity(&hp, kv, usize::MAX), MAX_BEAMS);
    }
}

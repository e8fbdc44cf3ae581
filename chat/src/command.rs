//! The `/` commands and the settings they change.
//!
//! Values are parsed as `mote generate` parses its flags (Rust's `str::parse`, so the same text
//! gives the same bits) and checked by the same rules: [`SamplerConfig::validate`] for the sampler,
//! [`BeamConfig::validate_with`] for the beams (whose error lines are `mote generate`'s own),
//! `1..=n_ctx` for the token limit; and beams no more than the storage holds ([`Limits`]). A bad
//! command changes nothing.

use core::fmt;

use mote_core::beam::{BeamConfig, BeamError, EarlyStopping};
use mote_core::sampler::{SamplerConfig, SamplerError};

/// Tokens a reply may have by default, as `mote generate` and the `generate` firmware.
pub const DEFAULT_MAX_TOKENS: usize = 64;

/// The help text, one command a line.
pub const HELP: &str = "\
type a prompt and press Enter; lines that begin with / are commands:
/temperature X           softmax temperature (0: greedy)
/top-k N                 sample among the N most likely tokens (off: all)
/top-p X                 sample among the most likely tokens whose probabilities reach X, in (0, 1]
/repetition-penalty X    penalise tokens already seen (1: off)
/no-repeat-ngram-size N  never repeat an n-gram of N tokens (0: off)
/seed N                  seed of the random generator
/max-tokens N            most tokens a reply has
/beams N                 beam search over N beams (1: none); replies with the best sequence
/length-penalty X        beam search: a sequence's score is its log-probability / length^X
/early-stopping W        beam search stops early: true, false or never
/num-return-sequences K  beam search: print the K best sequences, numbered
/min-new-tokens N        the end of text cannot come before N new tokens
/ignore-eos true|false   do not stop at the end-of-text token
/greedy                  greedy decoding: 1 beam, no sampling, no penalties (the default)
/settings                print the settings
/help                    print this
";

/// What a reply is generated with: the sampler's controls, the beams, the token limit and the
/// end-of-text rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Greedy, or transformers' sampling controls with a seed.
    pub sampler: SamplerConfig,
    /// Most tokens a reply has (`1..=n_ctx`).
    pub max_tokens: usize,
    /// Beams (1: none), length penalty, early stopping, sequences returned and `min_new_tokens`
    /// (which also applies to one beam); the repetition penalty and n-gram size in it are always
    /// the sampler's.
    pub beams: BeamConfig,
    /// Whether the end-of-text token is generated like any other.
    pub ignore_eos: bool,
}

impl Settings {
    /// Greedy decoding and [`DEFAULT_MAX_TOKENS`] (fewer if the context is shorter).
    pub fn new(n_ctx: usize) -> Self {
        Self {
            sampler: SamplerConfig::default(),
            max_tokens: DEFAULT_MAX_TOKENS.min(n_ctx).max(1),
            beams: BeamConfig::default(),
            ignore_eos: false,
        }
    }

    /// Whether a reply is a beam search (more than one beam).
    pub fn is_beam_search(&self) -> bool {
        self.beams.num_beams > 1
    }
}

/// What the model and the storage allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The model's context length.
    pub n_ctx: usize,
    /// The most beams the storage holds at the full context (1: no beam search).
    pub max_beams: usize,
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sampler;
        write!(f, "temperature {} top-k ", Decimal(s.temperature))?;
        match s.top_k {
            Some(k) => write!(f, "{k}")?,
            None => f.write_str("off")?,
        }
        let b = &self.beams;
        write!(
            f,
            " top-p {} repetition-penalty {} no-repeat-ngram-size {} seed {} max-tokens {} \
             beams {} length-penalty {} early-stopping {} num-return-sequences {} \
             min-new-tokens {} ignore-eos {} ({})",
            Decimal(s.top_p),
            Decimal(s.repetition_penalty),
            s.no_repeat_ngram_size,
            s.seed,
            self.max_tokens,
            b.num_beams,
            Decimal(b.length_penalty),
            b.early_stopping.name(),
            b.num_return_sequences,
            b.min_new_tokens,
            self.ignore_eos,
            if self.is_beam_search() {
                "beam search"
            } else if s.is_sampling() {
                "sampling"
            } else {
                "greedy"
            }
        )
    }
}

/// A word of the user's line in quotes, control characters escaped (`\x1b`), so that an error
/// line stays one line and a terminal shows it as typed. (Rust's `{:?}` would do it too, at the
/// price of the Unicode printable tables in flash.)
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// An `f32` in its shortest decimal form that parses back to the same bits (`0.8`, `1`, `1.3`),
/// without core::fmt's float formatting. Exact for every value of at least 1e-20 (numbers
/// below print as 0).
pub(crate) struct Decimal(pub(crate) f32);

/// Fractional digits the formatter computes: `m * 10^30` fits in a u128 for any f32 mantissa.
const DECIMAL_DIGITS: u32 = 30;

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if !x.is_finite() {
            return f.write_str(if x.is_nan() {
                "NaN"
            } else if x > 0.0 {
                "inf"
            } else {
                "-inf"
            });
        }
        if x.is_sign_negative() && x != 0.0 {
            f.write_str("-")?;
        }
        // |x| = m * 2^e exactly.
        let bits = x.to_bits();
        let exp = ((bits >> 23) & 0xff) as i32;
        let frac = u128::from(bits & 0x7f_ffff);
        let (m, e) = if exp == 0 { (frac, -149) } else { (frac | 0x80_0000, exp - 150) };
        if e >= 0 {
            // An integer: its digits, exactly.
            return write!(f, "{}", m << e);
        }
        // |x| * 10^30, rounded to nearest.
        let scale = 10u128.pow(DECIMAL_DIGITS);
        let shift = (-e) as u32;
        let scaled = if shift >= 128 {
            0
        } else {
            let p = m * scale;
            (p >> shift) + ((p >> (shift - 1)) & 1)
        };
        // The fewest fractional digits that parse back to the same value.
        let mut shown = (scaled / scale, 0u128, 0u32);
        for digits in 0..=DECIMAL_DIGITS {
            let unit = 10u128.pow(DECIMAL_DIGITS - digits);
            let r = (scaled + unit / 2) / unit;
            let (int, fr) = (r / 10u128.pow(digits), r % 10u128.pow(digits));
            shown = (int, fr, digits);
            let mut text = Text::new();
            let _ = write_decimal(&mut text, int, fr, digits);
            if text.as_str().parse::<f32>().is_ok_and(|y| y == x.abs()) {
                break;
            }
        }
        write_decimal(f, shown.0, shown.1, shown.2)
    }
}

/// `int.frac` with `frac` written in `digits` digits (none: just `int`).
fn write_decimal(f: &mut impl fmt::Write, int: u128, frac: u128, digits: u32) -> fmt::Result {
    if digits == 0 {
        return write!(f, "{int}");
    }
    write!(f, "{int}.")?;
    for d in (0..digits).rev() {
        write!(f, "{}", (frac / 10u128.pow(d)) % 10)?;
    }
    Ok(())
}

/// A short text in a fixed buffer, for checking a formatted number.
struct Text {
    buf: [u8; 64],
    len: usize,
}

impl Text {
    fn new() -> Self {
        Self { buf: [0; 64], len: 0 }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or(&[])).unwrap_or("")
    }
}

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A command line, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command<'a> {
    /// Change one setting (and the value as typed, for messages).
    Set(Setting, &'a str),
    /// Back to the default sampler (greedy, no penalties); the token limit stays.
    Greedy,
    /// Print the settings.
    Show,
    /// Print the help.
    Help,
}

/// One setting's new value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Setting {
    /// `/temperature X`
    Temperature(f32),
    /// `/top-k N` (`off`: `None`)
    TopK(Option<u32>),
    /// `/top-p X`
    TopP(f32),
    /// `/repetition-penalty X`
    RepetitionPenalty(f32),
    /// `/no-repeat-ngram-size N`
    NoRepeatNgramSize(u32),
    /// `/seed N`
    Seed(u64),
    /// `/max-tokens N`
    MaxTokens(usize),
    /// `/beams N`
    Beams(usize),
    /// `/length-penalty X`
    LengthPenalty(f32),
    /// `/early-stopping true|false|never`
    EarlyStopping(EarlyStopping),
    /// `/num-return-sequences K`
    NumReturnSequences(usize),
    /// `/min-new-tokens N`
    MinNewTokens(usize),
    /// `/ignore-eos true|false`
    IgnoreEos(bool),
}

/// Why a command line was refused; it borrows the line for the bad word.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CommandError<'a> {
    /// No command of that name.
    Unknown(&'a str),
    /// A setting given no value.
    MissingValue(&'static str),
    /// A command given a value it does not take, or a setting given two.
    ExtraValue {
        /// The command.
        command: &'static str,
        /// The first word too many.
        extra: &'a str,
    },
    /// A value that is not a number of the setting's kind.
    NotANumber {
        /// The command.
        command: &'static str,
        /// What was given.
        value: &'a str,
        /// What it should be.
        expected: &'static str,
    },
    /// A token limit outside `1..=n_ctx`.
    MaxTokens {
        /// The value given.
        value: usize,
        /// The model's context length.
        n_ctx: usize,
    },
    /// A value that is none of the words the setting takes.
    NotAWord {
        /// The command.
        command: &'static str,
        /// What was given.
        value: &'a str,
        /// The words it takes.
        expected: &'static str,
    },
    /// More beams than the storage holds.
    BeamCapacity {
        /// Beams asked for.
        beams: usize,
        /// The most the storage holds.
        max_beams: usize,
    },
    /// Beam settings that [`BeamConfig::validate_with`] refuses, with `mote generate`'s words.
    Beam(BeamError),
    /// A sampler setting that [`SamplerConfig::validate`] refuses.
    Sampler {
        /// The rule it breaks.
        error: SamplerError,
        /// The value as typed.
        value: &'a str,
    },
}

impl fmt::Display for CommandError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(name) => write!(f, "unknown command {}; /help lists them", Quoted(name)),
            Self::MissingValue(command) => write!(f, "/{command} needs a value"),
            Self::ExtraValue { command, extra } => {
                write!(f, "/{command} takes no more than one value, got also {}", Quoted(extra))
            }
            Self::NotANumber { command, value, expected } => {
                write!(f, "/{command} {} is not {expected}", Quoted(value))
            }
            Self::NotAWord { command, value, expected } => {
                write!(f, "/{command} {} is none of {expected}", Quoted(value))
            }
            Self::BeamCapacity { beams, max_beams } => write!(
                f,
                "{beams} beams are more than this build's storage holds ({max_beams}); build \
                 with `cargo xtask firmware --bin chat --num-beams {beams}` for more"
            ),
            Self::Beam(error) => write!(f, "{error}"),
            Self::MaxTokens { value, n_ctx } => {
                write!(f, "max-tokens {value} must be between 1 and the context length {n_ctx}")
            }
            // The value as typed, not as parsed: printing an f32 would cost the firmware
            // core::fmt's float formatting (about 20 KB of flash).
            Self::Sampler { error, value } => match error {
                SamplerError::Temperature(_) => {
                    write!(f, "temperature {} must be a finite number >= 0", Quoted(value))
                }
                SamplerError::TopP(_) => write!(f, "top-p {} must be in (0, 1]", Quoted(value)),
                SamplerError::TopKZero => {
                    write!(f, "top-k 0 keeps no token while sampling; /top-k off keeps all")
                }
                SamplerError::RepetitionPenalty(_) => write!(
                    f,
                    "repetition-penalty {} must be a finite number > 0 (1 is off)",
                    Quoted(value)
                ),
                SamplerError::NgramTooLong { size, n_ctx } => {
                    write!(f, "no-repeat-ngram-size {size} is larger than the context ({n_ctx})")
                }
            },
        }
    }
}

impl core::error::Error for CommandError<'_> {}

/// Parses `line`, which begins with `/`.
pub fn parse(line: &str) -> Result<Command<'_>, CommandError<'_>> {
    let mut words = line.strip_prefix('/').unwrap_or(line).split_whitespace();
    let name = words.next().unwrap_or("");
    let (command, takes_value): (&'static str, bool) = match name {
        "temperature" => ("temperature", true),
        "top-k" => ("top-k", true),
        "top-p" => ("top-p", true),
        "repetition-penalty" => ("repetition-penalty", true),
        "no-repeat-ngram-size" => ("no-repeat-ngram-size", true),
        "seed" => ("seed", true),
        "max-tokens" => ("max-tokens", true),
        "beams" => ("beams", true),
        "length-penalty" => ("length-penalty", true),
        "early-stopping" => ("early-stopping", true),
        "num-return-sequences" => ("num-return-sequences", true),
        "min-new-tokens" => ("min-new-tokens", true),
        "ignore-eos" => ("ignore-eos", true),
        "greedy" => ("greedy", false),
        "settings" => ("settings", false),
        "help" => ("help", false),
        _ => return Err(CommandError::Unknown(line.split_whitespace().next().unwrap_or(line))),
    };
    let value = if takes_value {
        Some(words.next().ok_or(CommandError::MissingValue(command))?)
    } else {
        None
    };
    if let Some(extra) = words.next() {
        return Err(CommandError::ExtraValue { command, extra });
    }
    let Some(value) = value else {
        return Ok(match command {
            "greedy" => Command::Greedy,
            "settings" => Command::Show,
            _ => Command::Help,
        });
    };
    let float = |v: &'static str| {
        value.parse::<f32>().map_err(|_| CommandError::NotANumber { command, value, expected: v })
    };
    let word = |expected: &'static str| CommandError::NotAWord { command, value, expected };
    let setting =
        match command {
            "temperature" => Setting::Temperature(float("a number")?),
            "top-p" => Setting::TopP(float("a number")?),
            "repetition-penalty" => Setting::RepetitionPenalty(float("a number")?),
            "length-penalty" => Setting::LengthPenalty(float("a number")?),
            "top-k" if value == "off" => Setting::TopK(None),
            "top-k" => Setting::TopK(Some(value.parse().map_err(|_| {
                CommandError::NotANumber { command, value, expected: "a whole number >= 0, or off" }
            })?)),
            "no-repeat-ngram-size" => Setting::NoRepeatNgramSize(whole(command, value)?),
            "seed" => Setting::Seed(whole(command, value)?),
            "beams" => Setting::Beams(whole(command, value)?),
            "num-return-sequences" => Setting::NumReturnSequences(whole(command, value)?),
            "min-new-tokens" => Setting::MinNewTokens(whole(command, value)?),
            "early-stopping" => Setting::EarlyStopping(match value {
                "true" => EarlyStopping::True,
                "false" => EarlyStopping::False,
                "never" => EarlyStopping::Never,
                _ => return Err(word("true, false, never")),
            }),
            "ignore-eos" => Setting::IgnoreEos(match value {
                "true" => true,
                "false" => false,
                _ => return Err(word("true, false")),
            }),
            _ => Setting::MaxTokens(whole(command, value)?),
        };
    Ok(Command::Set(setting, value))
}

/// `value` as a whole number of type `T`, or the error that names `command`.
fn whole<'a, T: core::str::FromStr>(
    command: &'static str,
    value: &'a str,
) -> Result<T, CommandError<'a>> {
    let expected = "a whole number >= 0";
    value.parse().map_err(|_| CommandError::NotANumber { command, value, expected })
}

impl Settings {
    /// These settings with `setting` (typed as `value`) changed, if the result is valid within
    /// `limits`.
    pub fn with<'a>(
        &self,
        setting: Setting,
        value: &'a str,
        limits: Limits,
    ) -> Result<Settings, CommandError<'a>> {
        let Limits { n_ctx, max_beams } = limits;
        let mut next = *self;
        let s = &mut next.sampler;
        let b = &mut next.beams;
        match setting {
            Setting::Temperature(x) => s.temperature = x,
            Setting::TopK(k) => s.top_k = k,
            Setting::TopP(x) => s.top_p = x,
            Setting::RepetitionPenalty(x) => s.repetition_penalty = x,
            Setting::NoRepeatNgramSize(n) => s.no_repeat_ngram_size = n,
            Setting::Seed(n) => s.seed = n,
            Setting::MaxTokens(n) => {
                if n == 0 || n > n_ctx {
                    return Err(CommandError::MaxTokens { value: n, n_ctx });
                }
                next.max_tokens = n;
            }
            Setting::Beams(n) => b.num_beams = n,
            Setting::LengthPenalty(x) => b.length_penalty = x,
            Setting::EarlyStopping(e) => b.early_stopping = e,
            Setting::NumReturnSequences(k) => b.num_return_sequences = k,
            Setting::MinNewTokens(n) => b.min_new_tokens = n,
            Setting::IgnoreEos(on) => next.ignore_eos = on,
        }
        next.beams.repetition_penalty = next.sampler.repetition_penalty;
        next.beams.no_repeat_ngram_size = next.sampler.no_repeat_ngram_size;
        next.sampler.validate(n_ctx).map_err(|error| CommandError::Sampler { error, value })?;
        next.beams.validate_with(&next.sampler, n_ctx).map_err(CommandError::Beam)?;
        if next.beams.num_beams > max_beams {
            return Err(CommandError::BeamCapacity { beams: next.beams.num_beams, max_beams });
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N_CTX: usize = 128;
    const LIMITS: Limits = Limits { n_ctx: N_CTX, max_beams: 4 };

    #[test]
    fn parses_every_setting() {
        assert_eq!(parse("/temperature 0.8"), Ok(Command::Set(Setting::Temperature(0.8), "0.8")));
        assert_eq!(parse("/top-k 40"), Ok(Command::Set(Setting::TopK(Some(40)), "40")));
        assert_eq!(parse("/top-k off"), Ok(Command::Set(Setting::TopK(None), "off")));
        assert_eq!(parse("/top-p 0.9"), Ok(Command::Set(Setting::TopP(0.9), "0.9")));
        assert_eq!(
            parse("/repetition-penalty 1.3"),
            Ok(Command::Set(Setting::RepetitionPenalty(1.3), "1.3"))
        );
        assert_eq!(
            parse("/no-repeat-ngram-size 3"),
            Ok(Command::Set(Setting::NoRepeatNgramSize(3), "3"))
        );
        assert_eq!(
            parse("/seed 18446744073709551615"),
            Ok(Command::Set(Setting::Seed(u64::MAX), "18446744073709551615"))
        );
        assert_eq!(
            parse("  /max-tokens   12  ".trim_start()),
            Ok(Command::Set(Setting::MaxTokens(12), "12"))
        );
        assert_eq!(parse("/beams 5"), Ok(Command::Set(Setting::Beams(5), "5")));
        assert_eq!(
            parse("/length-penalty -0.5"),
            Ok(Command::Set(Setting::LengthPenalty(-0.5), "-0.5"))
        );
        assert_eq!(
            parse("/early-stopping never"),
            Ok(Command::Set(Setting::EarlyStopping(EarlyStopping::Never), "never"))
        );
        assert_eq!(
            parse("/num-return-sequences 2"),
            Ok(Command::Set(Setting::NumReturnSequences(2), "2"))
        );
        assert_eq!(parse("/min-new-tokens 9"), Ok(Command::Set(Setting::MinNewTokens(9), "9")));
        assert_eq!(parse("/ignore-eos true"), Ok(Command::Set(Setting::IgnoreEos(true), "true")));
        assert_eq!(parse("/greedy"), Ok(Command::Greedy));
        assert_eq!(parse("/settings"), Ok(Command::Show));
        assert_eq!(parse("/help"), Ok(Command::Help));
    }

    #[test]
    fn help_lists_every_command() {
        for name in [
            "temperature",
            "top-k",
            "top-p",
            "repetition-penalty",
            "no-repeat-ngram-size",
            "seed",
            "max-tokens",
            "beams",
            "length-penalty",
            "early-stopping",
            "num-return-sequences",
            "min-new-tokens",
            "ignore-eos",
            "greedy",
            "settings",
            "help",
        ] {
            assert!(!matches!(parse(&format!("/{name}")), Err(CommandError::Unknown(_))), "{name}");
            assert!(HELP.lines().any(|l| l.starts_with(&format!("/{name} "))), "{name}");
        }
    }

    #[test]
    fn refuses_unknown_commands_and_malformed_values() {
        assert_eq!(parse("/temp 1"), Err(CommandError::Unknown("/temp")));
        assert_eq!(parse("/"), Err(CommandError::Unknown("/")));
        assert_eq!(parse("/seed"), Err(CommandError::MissingValue("seed")));
        assert_eq!(
            parse("/help me"),
            Err(CommandError::ExtraValue { command: "help", extra: "me" })
        );
        assert_eq!(
            parse("/top-k 4 5"),
            Err(CommandError::ExtraValue { command: "top-k", extra: "5" })
        );
        assert!(matches!(parse("/seed -1"), Err(CommandError::NotANumber { .. })));
        assert!(matches!(parse("/top-k 1.5"), Err(CommandError::NotANumber { .. })));
        assert!(matches!(parse("/temperature hot"), Err(CommandError::NotANumber { .. })));
        assert_eq!(
            parse("/early-stopping sometimes"),
            Err(CommandError::NotAWord {
                command: "early-stopping",
                value: "sometimes",
                expected: "true, false, never"
            })
        );
        assert!(matches!(parse("/ignore-eos yes"), Err(CommandError::NotAWord { .. })));
        assert!(matches!(parse("/beams -1"), Err(CommandError::NotANumber { .. })));
        assert!(matches!(
            parse("/max-tokens 99999999999999999999999"),
            Err(CommandError::NotANumber { .. })
        ));
    }

    #[test]
    fn values_are_checked_by_the_samplers_rules() {
        let s = Settings::new(N_CTX);
        let set = |x| s.with(x, "typed", LIMITS);
        assert!(matches!(
            set(Setting::Temperature(-1.0)),
            Err(CommandError::Sampler { error: SamplerError::Temperature(_), value: "typed" })
        ));
        assert!(set(Setting::Temperature(f32::NAN)).is_err());
        assert!(set(Setting::Temperature(f32::INFINITY)).is_err());
        assert!(set(Setting::TopP(0.0)).is_err());
        assert!(set(Setting::TopP(1.5)).is_err());
        assert!(set(Setting::RepetitionPenalty(0.0)).is_err());
        assert!(set(Setting::NoRepeatNgramSize(129)).is_err());
        assert!(set(Setting::NoRepeatNgramSize(128)).is_ok());
        assert_eq!(
            set(Setting::MaxTokens(0)),
            Err(CommandError::MaxTokens { value: 0, n_ctx: N_CTX })
        );
        assert!(set(Setting::MaxTokens(129)).is_err());
        assert_eq!(set(Setting::MaxTokens(128)).map(|s| s.max_tokens), Ok(128));
        // top-k 0 is refused only while sampling, as `mote generate` does.
        let k0 = set(Setting::TopK(Some(0))).unwrap();
        assert!(k0.with(Setting::Temperature(0.5), "0.5", LIMITS).is_err());
    }

    #[test]
    fn beam_values_are_checked_by_generates_rules_and_the_capacity() {
        let s = Settings::new(N_CTX);
        let set = |s: Settings, x| s.with(x, "typed", LIMITS);
        assert_eq!(set(s, Setting::Beams(0)), Err(CommandError::Beam(BeamError::NumBeams(0))));
        assert_eq!(
            set(s, Setting::Beams(5)),
            Err(CommandError::BeamCapacity { beams: 5, max_beams: 4 })
        );
        assert_eq!(
            set(s, Setting::Beams(256)),
            Err(CommandError::Beam(BeamError::NumBeams(256))),
            "the rule first, then the capacity"
        );
        let four = set(s, Setting::Beams(4)).unwrap();
        assert!(four.is_beam_search());
        assert_eq!(
            set(four, Setting::NumReturnSequences(5)),
            Err(CommandError::Beam(BeamError::NumReturnSequences { k: 5, num_beams: 4 }))
        );
        let k4 = set(four, Setting::NumReturnSequences(4)).unwrap();
        assert!(set(k4, Setting::Beams(3)).is_err(), "K stays at most the beams");
        assert_eq!(
            set(four, Setting::Temperature(0.7)),
            Err(CommandError::Beam(BeamError::Sampling))
        );
        assert_eq!(
            set(four, Setting::TopK(Some(40))),
            Err(CommandError::Beam(BeamError::SamplingControls))
        );
        let sampled = set(s, Setting::Temperature(0.7)).unwrap();
        assert_eq!(set(sampled, Setting::Beams(2)), Err(CommandError::Beam(BeamError::Sampling)));
        assert_eq!(
            set(s, Setting::LengthPenalty(f32::NAN)).map_err(|e| e.to_string()),
            Err("length penalty NaN must be a finite number".to_string())
        );
        // The beam search sees the sampler's penalties.
        let ngram = set(four, Setting::NoRepeatNgramSize(2)).unwrap();
        assert_eq!(ngram.beams.no_repeat_ngram_size, 2);
        let rp = set(ngram, Setting::RepetitionPenalty(1.5)).unwrap();
        assert_eq!(rp.beams.repetition_penalty, 1.5);
        assert_eq!(
            CommandError::BeamCapacity { beams: 5, max_beams: 4 }.to_string(),
            "5 beams are more than this build's storage holds (4); build with \
             `cargo xtask firmware --bin chat --num-beams 5` for more"
        );
    }

    #[test]
    fn decimals_are_the_shortest_text_that_parses_back() {
        for (x, text) in [
            (0.0f32, "0"),
            (1.0, "1"),
            (0.8, "0.8"),
            (0.9, "0.9"),
            (1.3, "1.3"),
            (-2.5, "-2.5"),
            (123456.0, "123456"),
            (1e-6, "0.000001"),
            (3.4028235e38, "340282346638528859811704183484516925440"),
            (f32::NAN, "NaN"),
        ] {
            assert_eq!(Decimal(x).to_string(), text);
        }
        // Every value from 1e-20 up prints as text that parses back to it.
        let mut x = 1e-20f32;
        while x < 1e30 {
            for y in [x, f32::from_bits(x.to_bits() + 1), x * 1.37] {
                assert_eq!(Decimal(y).to_string().parse::<f32>(), Ok(y), "{y:e}");
            }
            x *= 3.1;
        }
    }

    #[test]
    fn words_in_error_lines_are_quoted_with_control_characters_escaped() {
        assert_eq!(Quoted("a\u{1b}[2J\"b").to_string(), "\"a\\u{1b}[2J\\\"b\"");
        assert_eq!(Quoted("日本").to_string(), "\"日本\"");
    }

    #[test]
    fn settings_print_on_one_line_with_the_commands_names() {
        let s = Settings::new(N_CTX);
        assert_eq!(
            s.to_string(),
            "temperature 0 top-k off top-p 1 repetition-penalty 1 no-repeat-ngram-size 0 seed 0 \
             max-tokens 64 beams 1 length-penalty 1 early-stopping false num-return-sequences 1 \
             min-new-tokens 0 ignore-eos false (greedy)"
        );
        assert_eq!(Settings::new(16).max_tokens, 16);
    }
}

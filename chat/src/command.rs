//! The `/` commands and the settings they change.
//!
//! Values are parsed as `mote generate` parses its flags (Rust's `str::parse`, so the same text
//! gives the same bits) and checked by the same rules: [`SamplerConfig::validate`] for the sampler,
//! `1..=n_ctx` for the token limit. A bad command changes nothing.

use core::fmt;

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
/greedy                  greedy decoding, no penalties (the default)
/settings                print the settings
/help                    print this
";

/// What a reply is generated with: the sampler's controls and the token limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Greedy, or transformers' sampling controls with a seed.
    pub sampler: SamplerConfig,
    /// Most tokens a reply has (`1..=n_ctx`).
    pub max_tokens: usize,
}

impl Settings {
    /// Greedy decoding and [`DEFAULT_MAX_TOKENS`] (fewer if the context is shorter).
    pub fn new(n_ctx: usize) -> Self {
        Self { sampler: SamplerConfig::default(), max_tokens: DEFAULT_MAX_TOKENS.min(n_ctx).max(1) }
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sampler;
        write!(f, "temperature {} top-k ", s.temperature)?;
        match s.top_k {
            Some(k) => write!(f, "{k}")?,
            None => f.write_str("off")?,
        }
        write!(
            f,
            " top-p {} repetition-penalty {} no-repeat-ngram-size {} seed {} max-tokens {} ({})",
            s.top_p,
            s.repetition_penalty,
            s.no_repeat_ngram_size,
            s.seed,
            self.max_tokens,
            if s.is_sampling() { "sampling" } else { "greedy" }
        )
    }
}

/// A command line, parsed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// Change one setting.
    Set(Setting),
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
    /// A sampler setting that [`SamplerConfig::validate`] refuses.
    Sampler(SamplerError),
}

impl fmt::Display for CommandError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(name) => write!(f, "unknown command {name:?}; /help lists them"),
            Self::MissingValue(command) => write!(f, "/{command} needs a value"),
            Self::ExtraValue { command, extra } => {
                write!(f, "/{command} takes no more than one value, got also {extra:?}")
            }
            Self::NotANumber { command, value, expected } => {
                write!(f, "/{command} {value:?} is not {expected}")
            }
            Self::MaxTokens { value, n_ctx } => {
                write!(f, "max-tokens {value} must be between 1 and the context length {n_ctx}")
            }
            Self::Sampler(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for CommandError<'_> {}

/// Parses `line`, which begins with `/`.
pub fn parse(line: &str) -> Result<Command, CommandError<'_>> {
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
    let int = "a whole number >= 0";
    let setting =
        match command {
            "temperature" => Setting::Temperature(float("a number")?),
            "top-p" => Setting::TopP(float("a number")?),
            "repetition-penalty" => Setting::RepetitionPenalty(float("a number")?),
            "top-k" if value == "off" => Setting::TopK(None),
            "top-k" => Setting::TopK(Some(value.parse().map_err(|_| {
                CommandError::NotANumber { command, value, expected: "a whole number >= 0, or off" }
            })?)),
            "no-repeat-ngram-size" => {
                Setting::NoRepeatNgramSize(value.parse().map_err(|_| CommandError::NotANumber {
                    command,
                    value,
                    expected: int,
                })?)
            }
            "seed" => Setting::Seed(value.parse().map_err(|_| CommandError::NotANumber {
                command,
                value,
                expected: int,
            })?),
            _ => Setting::MaxTokens(value.parse().map_err(|_| CommandError::NotANumber {
                command,
                value,
                expected: int,
            })?),
        };
    Ok(Command::Set(setting))
}

impl Settings {
    /// These settings with `setting` changed, if the result is valid for a context of `n_ctx`.
    pub fn with(&self, setting: Setting, n_ctx: usize) -> Result<Settings, CommandError<'static>> {
        let mut next = *self;
        let s = &mut next.sampler;
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
        }
        next.sampler.validate(n_ctx).map_err(CommandError::Sampler)?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N_CTX: usize = 128;

    #[test]
    fn parses_every_setting() {
        assert_eq!(parse("/temperature 0.8"), Ok(Command::Set(Setting::Temperature(0.8))));
        assert_eq!(parse("/top-k 40"), Ok(Command::Set(Setting::TopK(Some(40)))));
        assert_eq!(parse("/top-k off"), Ok(Command::Set(Setting::TopK(None))));
        assert_eq!(parse("/top-p 0.9"), Ok(Command::Set(Setting::TopP(0.9))));
        assert_eq!(
            parse("/repetition-penalty 1.3"),
            Ok(Command::Set(Setting::RepetitionPenalty(1.3)))
        );
        assert_eq!(
            parse("/no-repeat-ngram-size 3"),
            Ok(Command::Set(Setting::NoRepeatNgramSize(3)))
        );
        assert_eq!(parse("/seed 18446744073709551615"), Ok(Command::Set(Setting::Seed(u64::MAX))));
        assert_eq!(
            parse("  /max-tokens   12  ".trim_start()),
            Ok(Command::Set(Setting::MaxTokens(12)))
        );
        assert_eq!(parse("/greedy"), Ok(Command::Greedy));
        assert_eq!(parse("/settings"), Ok(Command::Show));
        assert_eq!(parse("/help"), Ok(Command::Help));
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
        assert!(matches!(
            parse("/max-tokens 99999999999999999999999"),
            Err(CommandError::NotANumber { .. })
        ));
    }

    #[test]
    fn values_are_checked_by_the_samplers_rules() {
        let s = Settings::new(N_CTX);
        let set = |x| s.with(x, N_CTX);
        assert!(matches!(
            set(Setting::Temperature(-1.0)),
            Err(CommandError::Sampler(SamplerError::Temperature(_)))
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
        assert!(k0.with(Setting::Temperature(0.5), N_CTX).is_err());
    }

    #[test]
    fn settings_print_on_one_line_with_the_commands_names() {
        let s = Settings::new(N_CTX);
        assert_eq!(
            s.to_string(),
            "temperature 0 top-k off top-p 1 repetition-penalty 1 no-repeat-ngram-size 0 seed 0 \
             max-tokens 64 (greedy)"
        );
        assert_eq!(Settings::new(16).max_tokens, 16);
    }
}

//! The reading half of `mote convert` on arbitrary bytes: `config.json`, a NUL byte, then the
//! safetensors file. Every input is converted or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(mote_tests::exercise_convert(data));
});

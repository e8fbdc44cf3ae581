//! The serial-console chat fed arbitrary bytes: lines too long, not UTF-8, unknown commands, bad
//! values, prompts of no tokens or too many; every line answered, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(mote_tests::exercise_chat(data));
});

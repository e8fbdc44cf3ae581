//! The GGUF reader on arbitrary bytes: parsing must return, never panic or read out of bounds, and
//! whatever it accepts must be readable whole (every metadata value, array element and tensor view).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(mote_tests::exercise_gguf(data));
});

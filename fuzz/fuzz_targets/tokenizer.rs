//! Tokenizer encode, decode and streamed decode of arbitrary bytes with real vocabularies (the
//! default model's and GPT-2's): never a panic, and encode then decode gives the text back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for tok in mote_tests::fuzz_tokenizers() {
        std::hint::black_box(mote_tests::exercise_tokenizer(tok, data));
    }
});

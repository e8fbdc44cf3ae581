//! Model load plus a few generated tokens on arbitrary GGUF bytes (seeded with tiny GPT-2 models,
//! some holding NaN and Inf): `Model::load` must return an error or a model that the forward pass,
//! the run state and the samplers survive, whatever its tensor values and shapes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(mote_tests::exercise_model(data));
});

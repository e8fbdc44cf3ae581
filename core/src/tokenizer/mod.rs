//! Work in progress on the `tokenizer` branch.

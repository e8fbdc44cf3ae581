//! A GGUF v3 writer (work in progress on the `convert` branch).

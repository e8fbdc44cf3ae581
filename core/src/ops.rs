//! Work in progress on the `inference` branch.

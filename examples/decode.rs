//! Placeholder replaced by the decoder.
fn main() {}

//! Helpers shared by the integration tests. Each test file that needs them says `mod common;`.

pub(crate) mod tshark_check;
pub(crate) mod tshark_text;
pub(crate) mod vectors;

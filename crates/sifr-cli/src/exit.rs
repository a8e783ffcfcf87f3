//! Exit codes, shared with the tests. A container command's own status passes through unchanged;
//! these are the codes sifr itself chooses.

/// Success.
pub const OK: u8 = 0;
/// The command failed: bad input (an invalid definition file, a corrupt image) or a failed step.
pub const FAILURE: u8 = 1;
/// The command line itself was wrong: unknown flag, missing argument, bad setting value.
pub const USAGE: u8 = 2;

//! Exit codes, shared with the tests. A container command's own status passes through unchanged
//! (a missing command 127, a command killed by signal N 128+N); these are the codes sifr itself
//! chooses, Apptainer's, so that a wrapper written for Apptainer reads them the same way.

/// Success.
pub const OK: u8 = 0;
/// sifr itself failed: bad input (an invalid definition file, a corrupt image, a bad setting)
/// or a failed step. Apptainer's fatal errors (`sylog.Fatalf`) exit 255, which no ordinary
/// `exit 1` of the application can be mistaken for.
pub const FAILURE: u8 = 255;
/// The command line itself was wrong: unknown flag, missing argument. Apptainer exits 1 here
/// (its command parser's error path), and so does sifr.
pub const USAGE: u8 = 1;

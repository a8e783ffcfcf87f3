//! The SIF container format, byte-compatible with Apptainer and SingularityCE.

//! Building images. Today: packing a root filesystem directory into a SIF whose primary
//! partition is a SquashFS written by the `squashfs` crate ([`pack::pack_dir`]), with the
//! architecture read from the image's own ELF files ([`arch::detect`]).
//!
//! Definition files (`defbuild`: bootstrap sources, `%post`, the `/.singularity.d` layout)
//! feed the same packer; OCI images (`pull`) are merged straight into a SIF's partition.
//! Writable ext3 overlays (`overlay`, for `overlay create`) are made with e2fsprogs.
//! This crate does not print or exit; it returns typed errors and reports.

pub mod arch;
pub mod defbuild;
pub mod isatree;
pub mod layout;
mod ociconfig;
pub mod overlay;
pub mod overlay_apply;
pub mod pack;
pub mod pull;
pub mod reproducible;

pub use arch::{ArchGuess, ArchSource};
pub use pack::{PackError, PackOptions, PackReport, pack_dir};
pub use reproducible::SourceDate;

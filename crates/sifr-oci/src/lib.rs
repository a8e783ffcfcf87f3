//! OCI images: references, the distribution protocol, image layouts and archives, and the
//! whiteout-aware merge of layers into a stream of entries for the SquashFS writer.
//!
//! ```text
//! reference ─► client (manifest by platform, blobs) ─► cache ─┐
//! layout (oci:, oci-archive:, docker-archive:) ───────────────┴─► merge ─► Sink (squashfs)
//! reference (oras://) ─► client ─► oras: one SIF file, pulled or pushed whole
//! ```
//!
//! Nothing here extracts to the host filesystem: layers go from their verified blobs through
//! [`merge::merge`] into a [`merge::Sink`], normally the SquashFS writer. Nothing prints.
//! This crate may use `squashfs`, never `launch` or `sys` (see the architecture notes).

pub mod cache;
pub mod client;
pub mod digest;
pub mod hkp;
pub mod images;
pub mod layout;
pub mod library;
pub mod manifest;
pub mod merge;
pub mod net;
pub mod oras;
pub mod pathlock;
pub mod reference;

pub use digest::Digest;
pub use reference::{ImageSource, Reference};

//! SIF image signatures and OpenPGP keyrings, interoperable with Apptainer and SingularityCE.
//!
//! - [`verify`]: checks an image's signature objects (OpenPGP clear-signed image metadata,
//!   DSSE envelopes, legacy `SIFHASH:` signatures) and gives one verdict per signature.
//! - [`sign`]: adds signature objects as Apptainer 1.x does (one per object group).
//! - [`metadata`]: the signed "image metadata" JSON and the integrity-protected fields.
//! - [`openpgp`]: OpenPGP keys and clear-signed messages through rPGP (pure Rust).
//! - [`cert`]: X.509 certificate chains whose leaf key checks DSSE signatures.
//! - [`dsse`]: DSSE envelopes with PEM keys (RSA, ECDSA P-256/P-384, Ed25519).
//! - [`ecl`]: the execution control list (Apptainer's `ecl.toml`): which images may run.
//! - [`keyring`]: Apptainer's keyring files (`pgp-public`, `pgp-secret`, `global-pgp-public`).
//!
//! This crate never prints; no cryptography is implemented here, only the formats around it.

pub mod cert;
pub mod dsse;
pub mod ecl;
mod error;
pub mod keyring;
pub mod metadata;
pub mod openpgp;
pub mod sign;
pub mod verify;

pub use error::Error;
pub use pgp::composed::{SignedPublicKey, SignedSecretKey};
pub use x509_cert as x509;

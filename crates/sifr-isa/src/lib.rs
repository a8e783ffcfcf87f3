//! `isa`: which CPU features an image's programs need, and what the host offers.
//!
//! Software built inside an image often targets the build machine's CPU and dies with
//! "Illegal instruction" on older nodes. This crate records, at build time, what each ELF
//! executable and shared library of an image *requires* ([`ImageFacts::scan`], stored in the
//! SIF as JSON), detects what the host CPU offers ([`HostFacts::detect`]), and decides at
//! launch whether a program and its libraries will run ([`judge`]).
//!
//! Requirements come from two sources: the `GNU_PROPERTY_X86_ISA_1_NEEDED` note (reliable
//! when above baseline; glibc's loader enforces it) and instruction decoding with a
//! reachability heuristic that separates code that always runs from code selected at run
//! time (ifunc variants, CPUID-guarded paths). The heuristic is documented in [`x86`]'s
//! module docs (`src/x86.rs`); treat its results as a warning, never as a hard failure.
//!
//! A leaf crate (of the workspace it uses only `sifr-arch`, itself a leaf), no `unsafe`, no
//! printing. [`ImageFacts::scan`] uses rayon threads, so it must not run on the launch path
//! before namespaces are set up; [`HostFacts::detect`] and [`judge`] start no threads.

mod aarch64;
pub mod cpus;
mod elf;
mod error;
mod facts;
mod feature;
mod host;
mod judge;
mod scan;
pub mod target;
pub mod x86;

pub use elf::{Arch, FileKind, is_elf};
pub use error::Error;
pub use facts::{Evidence, FileFacts, Needs};
pub use feature::{Feature, FeatureSet, Level};
pub use host::HostFacts;
pub use judge::{Offender, Verdict, judge, judge_image};
pub use scan::{
    DirTree, Entry, FACTS_VERSION, ImageFacts, Progress, SIF_OBJECT_NAME, Skipped, Summary, Tree,
};

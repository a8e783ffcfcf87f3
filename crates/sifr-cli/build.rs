//! Link the `sifr` binary as a position-dependent executable (`-no-pie`) on Linux.
//!
//! Every container start pays for the dynamic loader's relocation of the binary: as a PIE, each
//! page of `.data.rel.ro` (vtables, static tables of clap, brush, ...) is written at start, one
//! copy-on-write page fault each. With the environment interpreter linked in that grew to
//! 35 000 relocations over 590 KiB and cost about 0.6 ms per start; linked at a fixed address
//! the loader has nothing to relocate (144 page faults for `sifr version` against 300). sifr is
//! never setuid, so the binary's own address-space layout randomization guards little; Go,
//! which Apptainer is written in, links position-dependent by default too. Figures in
//! docs/benchmarks.md ("Environment scripts").
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

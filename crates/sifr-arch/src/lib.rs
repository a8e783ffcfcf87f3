//! `arch`: CPU architectures, named once for everything that names them.
//!
//! [`Arch`] is the architecture vocabulary of SIF descriptors, OCI platforms, the image facts of
//! `sifr-isa` and the host checks of the runtime; [`ElfIdent`] is the one reader of the ELF
//! identification (class, byte order, `e_machine`) that says which architecture a file is for.
//!
//! Why a crate of its own: `sifr-sif`, `sifr-isa`, `sifr-oci`, `sifr-build` and `sifr-launch`
//! all name architectures. Putting the type in `sifr-sif` would make the ISA analyser and the
//! registry client depend on the container format just for a table of names; putting it in
//! `sifr-isa` would pull an instruction decoder and rayon into the format crate. A leaf with no
//! dependencies (serde only when asked for) keeps every other leaf a leaf.
//!
//! Pure: no I/O beyond reading the first bytes of a reader handed in, no `unsafe`.

mod elf;

pub use elf::ElfIdent;

use std::fmt;

/// A CPU architecture, named as Go's `GOARCH` names it (`arm64`, not `aarch64`; `386`, not
/// `i386`), which are the names SIF and OCI platforms use.
///
/// The declaration order is the order `Ord` sorts in (the ISA summary breaks ties with it,
/// 64-bit x86 first and `Unknown` last); SIF's numbering is a separate table
/// (`SIF_ORDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Arch {
    /// x86-64 (`EM_X86_64`, 64-bit).
    Amd64,
    /// i386 (`EM_386`).
    #[cfg_attr(feature = "serde", serde(rename = "386"))]
    I386,
    /// AArch64.
    Arm64,
    /// 32-bit Arm.
    Arm,
    /// 64-bit POWER, little-endian.
    Ppc64le,
    /// 64-bit POWER, big-endian.
    Ppc64,
    /// RISC-V 64-bit.
    Riscv64,
    /// IBM Z.
    S390x,
    /// MIPS 64-bit little-endian.
    Mips64le,
    /// MIPS 64-bit big-endian.
    Mips64,
    /// MIPS 32-bit little-endian.
    Mipsle,
    /// MIPS 32-bit big-endian.
    Mips,
    /// LoongArch 64-bit.
    Loong64,
    /// Anything else.
    Unknown,
}

/// Every architecture with its Go name, in SIF's numbering: the index is the two-digit code SIF
/// writes into its header and partition descriptors (`"02"` is amd64), so this order is part of
/// the file format and must never change.
const SIF_ORDER: [(Arch, &str); 14] = [
    (Arch::Unknown, "unknown"),
    (Arch::I386, "386"),
    (Arch::Amd64, "amd64"),
    (Arch::Arm, "arm"),
    (Arch::Arm64, "arm64"),
    (Arch::Ppc64, "ppc64"),
    (Arch::Ppc64le, "ppc64le"),
    (Arch::Mips, "mips"),
    (Arch::Mipsle, "mipsle"),
    (Arch::Mips64, "mips64"),
    (Arch::Mips64le, "mips64le"),
    (Arch::S390x, "s390x"),
    (Arch::Riscv64, "riscv64"),
    (Arch::Loong64, "loong64"),
];

/// `e_machine` values named here (from the System V ABI and its processor supplements).
const EM_386: u16 = 3;
const EM_MIPS: u16 = 8;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;

impl Arch {
    /// Every known architecture (without `Unknown`), in SIF's code order.
    pub fn all() -> impl Iterator<Item = Arch> {
        SIF_ORDER[1..].iter().map(|(a, _)| *a)
    }

    fn sif_index(self) -> usize {
        SIF_ORDER.iter().position(|(a, _)| *a == self).unwrap_or(0)
    }

    /// The Go `GOARCH` name (`"amd64"`); `"unknown"` for [`Arch::Unknown`].
    pub fn go_name(self) -> &'static str {
        SIF_ORDER[self.sif_index()].1
    }

    /// Parses a Go `GOARCH` name; `None` for anything else (including `"unknown"`).
    pub fn from_go_name(name: &str) -> Option<Arch> {
        SIF_ORDER[1..]
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(a, _)| *a)
    }

    /// SIF's on-disk code: two ASCII digits and a NUL (`b"02\0"` for amd64).
    pub fn sif_code(self) -> [u8; 3] {
        let i = self.sif_index() as u8;
        [b'0' + i / 10, b'0' + i % 10, 0]
    }

    /// Decodes SIF's on-disk code; anything unrecognised is [`Arch::Unknown`] (as in Go).
    pub fn from_sif_code(code: [u8; 3]) -> Arch {
        if code[2] != 0 || !code[0].is_ascii_digit() || !code[1].is_ascii_digit() {
            return Arch::Unknown;
        }
        let i = usize::from((code[0] - b'0') * 10 + (code[1] - b'0'));
        SIF_ORDER.get(i).map_or(Arch::Unknown, |(a, _)| *a)
    }

    /// The `siftool add --partarch N` numbering (1 = 386 ... 12 = riscv64; 13 = loong64 here).
    pub fn from_siftool_number(n: i64) -> Arch {
        if (1..=13).contains(&n) {
            SIF_ORDER[n as usize].0
        } else {
            Arch::Unknown
        }
    }

    /// The architecture this program was compiled for (Rust's `target_arch` and endianness
    /// mapped to Go's names); [`Arch::Unknown`] on any other.
    pub fn host() -> Arch {
        Arch::from_rust_arch(std::env::consts::ARCH, cfg!(target_endian = "little"))
    }

    /// Rust's `std::env::consts::ARCH` spelling (`x86_64`, `aarch64`, ...) and byte order.
    fn from_rust_arch(rust: &str, little: bool) -> Arch {
        match (rust, little) {
            ("x86_64", _) => Arch::Amd64,
            ("x86", _) => Arch::I386,
            ("aarch64", _) => Arch::Arm64,
            ("arm", _) => Arch::Arm,
            ("powerpc64", true) => Arch::Ppc64le,
            ("powerpc64", false) => Arch::Ppc64,
            ("riscv64", _) => Arch::Riscv64,
            ("s390x", _) => Arch::S390x,
            ("mips64", true) => Arch::Mips64le,
            ("mips64", false) => Arch::Mips64,
            ("mips", true) => Arch::Mipsle,
            ("mips", false) => Arch::Mips,
            ("loongarch64", _) => Arch::Loong64,
            _ => Arch::Unknown,
        }
    }

    /// The architecture an ELF identification names; [`Arch::Unknown`] for machines not named
    /// here and for a class that does not fit the machine.
    ///
    /// The class is checked: an `EM_X86_64` file of class 32 is the x32 ABI, an `EM_AARCH64`
    /// one AArch64 ILP32, neither a Go architecture; only MIPS names both widths.
    pub fn from_elf_ident(ident: ElfIdent) -> Arch {
        let ElfIdent {
            class64,
            little,
            machine,
        } = ident;
        match (machine, class64, little) {
            (EM_X86_64, true, _) => Arch::Amd64,
            (EM_386, false, _) => Arch::I386,
            (EM_AARCH64, true, _) => Arch::Arm64,
            (EM_ARM, false, _) => Arch::Arm,
            (EM_PPC64, true, true) => Arch::Ppc64le,
            (EM_PPC64, true, false) => Arch::Ppc64,
            (EM_RISCV, true, _) => Arch::Riscv64,
            (EM_S390, true, _) => Arch::S390x,
            (EM_MIPS, true, true) => Arch::Mips64le,
            (EM_MIPS, true, false) => Arch::Mips64,
            (EM_MIPS, false, true) => Arch::Mipsle,
            (EM_MIPS, false, false) => Arch::Mips,
            (EM_LOONGARCH, true, _) => Arch::Loong64,
            _ => Arch::Unknown,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.go_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sif_codes_round_trip_and_keep_their_numbers() {
        for a in Arch::all() {
            assert_eq!(Arch::from_sif_code(a.sif_code()), a);
            assert_eq!(Arch::from_go_name(a.go_name()), Some(a));
        }
        assert_eq!(Arch::Amd64.sif_code(), *b"02\0");
        assert_eq!(Arch::Loong64.sif_code(), *b"13\0");
        assert_eq!(Arch::from_sif_code(*b"99\0"), Arch::Unknown);
        assert_eq!(Arch::Unknown.sif_code(), *b"00\0");
        assert_eq!(Arch::from_siftool_number(4), Arch::Arm64);
        assert_eq!(Arch::all().count(), 13);
    }

    #[test]
    fn host_names_use_go_spelling() {
        assert_eq!(Arch::from_rust_arch("x86_64", true), Arch::Amd64);
        assert_eq!(Arch::from_rust_arch("aarch64", true), Arch::Arm64);
        assert_eq!(Arch::from_rust_arch("powerpc64", false), Arch::Ppc64);
        assert_eq!(Arch::from_rust_arch("mips", true), Arch::Mipsle);
        assert_eq!(Arch::from_rust_arch("sparc64", false), Arch::Unknown);
    }

    #[test]
    fn elf_identification_names_the_architecture() {
        let id = |class64, little, machine| ElfIdent {
            class64,
            little,
            machine,
        };
        assert_eq!(Arch::from_elf_ident(id(true, true, 62)), Arch::Amd64);
        assert_eq!(Arch::from_elf_ident(id(false, true, 3)), Arch::I386);
        assert_eq!(Arch::from_elf_ident(id(true, false, 21)), Arch::Ppc64);
        assert_eq!(Arch::from_elf_ident(id(false, true, 8)), Arch::Mipsle);
        // x32: a 64-bit machine in a 32-bit class is not amd64.
        assert_eq!(Arch::from_elf_ident(id(false, true, 62)), Arch::Unknown);
        assert_eq!(Arch::from_elf_ident(id(true, true, 9999)), Arch::Unknown);
    }

    #[test]
    fn ord_puts_amd64_first_and_unknown_last() {
        assert!(Arch::Amd64 < Arch::I386);
        assert!(Arch::Loong64 < Arch::Unknown);
    }
}

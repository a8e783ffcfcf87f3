//! The ELF identification: the first 20 bytes of an ELF file (magic, class, byte order,
//! `e_machine`), which is all that is needed to tell which architecture a file is for.
//!
//! One reader for the image's architecture (`sifr-build`), the loader cache's library filter
//! (`sifr-launch`) and the ISA scan (`sifr-isa`, which parses the rest with `object`). Reads
//! only what it is handed; opening files (and refusing symlinks or FIFOs) is the caller's.

use std::io::Read;

use crate::Arch;

/// Class, byte order and machine of an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElfIdent {
    /// `ELFCLASS64` (`EI_CLASS` = 2); false for `ELFCLASS32`.
    pub class64: bool,
    /// `ELFDATA2LSB` (`EI_DATA` = 1); false for `ELFDATA2MSB`.
    pub little: bool,
    /// `e_machine` (62 x86-64, 3 i386, 183 AArch64, 40 Arm, ...), in the file's byte order.
    pub machine: u16,
}

impl ElfIdent {
    /// Bytes needed: `e_ident` (16), `e_type` (2), `e_machine` (2).
    pub const LEN: usize = 20;

    /// Parses the start of a file; `None` unless it has the ELF magic, a valid class and a
    /// valid byte order, and is long enough to hold `e_machine`.
    pub fn parse(head: &[u8]) -> Option<ElfIdent> {
        if head.get(..4)? != b"\x7fELF" {
            return None;
        }
        let class64 = match head.get(4)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        let m: [u8; 2] = head.get(18..20)?.try_into().ok()?;
        let (little, machine) = match head.get(5)? {
            1 => (true, u16::from_le_bytes(m)),
            2 => (false, u16::from_be_bytes(m)),
            _ => return None,
        };
        Some(ElfIdent {
            class64,
            little,
            machine,
        })
    }

    /// Reads the first [`ElfIdent::LEN`] bytes of `r` and parses them; `None` when it is
    /// shorter, unreadable or not ELF.
    pub fn read(mut r: impl Read) -> Option<ElfIdent> {
        let mut head = [0u8; Self::LEN];
        r.read_exact(&mut head).ok()?;
        ElfIdent::parse(&head)
    }

    /// The architecture this identification names.
    pub fn arch(self) -> Arch {
        Arch::from_elf_ident(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        let m = if data == 2 {
            machine.to_be_bytes()
        } else {
            machine.to_le_bytes()
        };
        h[18..20].copy_from_slice(&m);
        h
    }

    #[test]
    fn reads_class_order_and_machine() {
        let id = ElfIdent::parse(&head(2, 1, 183)).unwrap();
        assert_eq!((id.class64, id.little, id.machine), (true, true, 183));
        assert_eq!(id.arch(), Arch::Arm64);
        let be = ElfIdent::read(&head(2, 2, 22)[..]).unwrap();
        assert_eq!((be.little, be.machine, be.arch()), (false, 22, Arch::S390x));
    }

    #[test]
    fn rejects_what_is_not_an_elf_identification() {
        assert_eq!(ElfIdent::parse(b"#!/bin/sh\n"), None);
        assert_eq!(ElfIdent::parse(&head(2, 1, 62)[..10]), None);
        assert_eq!(ElfIdent::parse(&head(3, 1, 62)), None);
        assert_eq!(ElfIdent::parse(&head(2, 0, 62)), None);
        assert_eq!(ElfIdent::read(&b"\x7fELF"[..]), None);
    }
}

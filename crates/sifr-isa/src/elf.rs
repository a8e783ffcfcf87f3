//! ELF facts read with the `object` crate: architecture, file kind, the x86 ISA note,
//! `DT_NEEDED`, and the raw material the instruction analysis needs (executable sections,
//! symbols, function ranges from `.eh_frame_hdr`, ifunc resolvers, constructors, GOT slots).
//!
//! Everything here is a pure function of the file's bytes; it never reads other files (it does
//! not resolve libraries) and never decodes instructions. Malformed tables are skipped rather
//! than failing the whole file: a scanner must not stop at one odd file in an image.

use object::elf;
use object::read::elf::{
    ElfFile, FileHeader, NoteIterator, ProgramHeader, Rela, SectionHeader, Sym,
};
use object::{Endianness, FileKind as ObjectFileKind};
use serde::{Deserialize, Serialize};

use crate::feature::Level;

/// The CPU architecture of an ELF file, named as Go (and so OCI and SIF) name it; one type for
/// the whole workspace, from `sifr-arch`.
pub use sifr_arch::Arch;

/// What kind of ELF file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A program (`ET_EXEC`, or a PIE: `ET_DYN` with `DF_1_PIE`, or with an interpreter and
    /// no soname).
    Executable,
    /// A shared library or loadable module (`ET_DYN` otherwise). glibc's `libc.so.6` has an
    /// interpreter and an entry point but also a soname, so it is a library.
    SharedLibrary,
    /// An object file (`ET_REL`); its code is not analysed (branch targets are unrelocated).
    Relocatable,
    /// Core dumps and anything else.
    Other,
}

/// A defined function symbol (from `.symtab` and `.dynsym`).
#[derive(Debug, Clone)]
pub(crate) struct FuncSym<'a> {
    pub addr: u64,
    pub name: &'a [u8],
    /// `STT_GNU_IFUNC`: the value is the resolver's address.
    pub ifunc: bool,
    /// In `.dynsym`, global or weak, default or protected visibility.
    pub exported: bool,
}

/// An executable section's bytes and load address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeSection<'a> {
    pub addr: u64,
    pub bytes: &'a [u8],
    /// For `.plt*` sections: the stub size, so that every stub is its own region.
    pub plt_entry: Option<u64>,
}

/// Everything read from one ELF file before instruction analysis.
#[derive(Debug)]
pub(crate) struct ElfInfo<'a> {
    pub arch: Arch,
    pub is_64: bool,
    pub kind: FileKind,
    /// `ET_EXEC`: loaded at a fixed address, so absolute addresses appear as immediates.
    pub fixed_address: bool,
    /// `GNU_PROPERTY_X86_ISA_1_NEEDED` bits, when the note is present.
    pub isa_needed_bits: Option<u32>,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub interpreter: Option<String>,
    pub entry: u64,
    pub code: Vec<CodeSection<'a>>,
    /// Address ranges of writable allocated sections (`.data`, `.bss`, `.got`, ...).
    pub writable: Vec<(u64, u64)>,
    pub funcs: Vec<FuncSym<'a>>,
    /// Functions with unwind info: `(start, end)` from the `.eh_frame_hdr` search table and
    /// the FDEs it points to (present even when stripped). `end == start` when the FDE's
    /// length could not be read.
    pub fdes: Vec<(u64, u64)>,
    /// Resolver addresses from `R_X86_64_IRELATIVE` addends (`STT_GNU_IFUNC` symbols are in
    /// `funcs`).
    pub irelative: Vec<u64>,
    /// `DT_INIT` and the entries of `.init_array` / `.preinit_array`.
    pub constructors: Vec<u64>,
    /// GOT slot address -> name of the symbol its `GLOB_DAT` / `64` / `JUMP_SLOT`
    /// relocation binds, and the symbol's address when this file defines it.
    pub got_symbols: Vec<(u64, &'a [u8], Option<u64>)>,
}

/// True if `data` starts with the ELF magic.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// Parses the ELF headers and tables; the error is `object`'s description of what is wrong.
pub(crate) fn parse(data: &[u8]) -> Result<ElfInfo<'_>, String> {
    let parsed = match ObjectFileKind::parse(data).map_err(|e| e.to_string())? {
        ObjectFileKind::Elf32 => parse_as::<elf::FileHeader32<Endianness>>(data),
        ObjectFileKind::Elf64 => parse_as::<elf::FileHeader64<Endianness>>(data),
        _ => return Err("unsupported ELF class".to_owned()),
    };
    parsed.map_err(|e| e.to_string())
}

/// The parts of a file a parse step reads: the parsed file, its bytes and its byte order.
struct Parts<'f, 'a, Elf: FileHeader<Endian = Endianness>> {
    file: &'f ElfFile<'a, Elf, &'a [u8]>,
    data: &'a [u8],
    e: Endianness,
}

/// What the section walk keeps for the later steps besides what it puts in [`ElfInfo`].
#[derive(Default)]
struct SectionFinds<'a> {
    /// `.init_array` / `.preinit_array`: address and bytes.
    init_arrays: Vec<(u64, &'a [u8])>,
    eh_frame_hdr: Option<(u64, &'a [u8])>,
    eh_frame: Option<(u64, &'a [u8])>,
}

/// Parse one ELF class: headers, then (for executables and libraries only) sections, symbols,
/// relocations and constructors, each a step below.
fn parse_as<'a, Elf: FileHeader<Endian = Endianness>>(
    data: &'a [u8],
) -> Result<ElfInfo<'a>, object::read::Error> {
    let file = ElfFile::<Elf, &'a [u8]>::parse(data)?;
    let e = file.endian();
    let hdr = file.elf_header();
    let is_64 = hdr.is_class_64();
    let machine = hdr.e_machine(e).0;
    let arch = Arch::from_elf_ident(sifr_arch::ElfIdent {
        class64: is_64,
        little: hdr.is_little_endian(),
        machine,
    });
    let parts = Parts {
        file: &file,
        data,
        e,
    };

    let mut info = ElfInfo {
        arch,
        is_64,
        kind: FileKind::Other,
        fixed_address: hdr.e_type(e) == elf::ET_EXEC,
        isa_needed_bits: None,
        needed: Vec::new(),
        soname: None,
        interpreter: None,
        entry: hdr.e_entry(e).into(),
        code: Vec::new(),
        writable: Vec::new(),
        funcs: Vec::new(),
        fdes: Vec::new(),
        irelative: Vec::new(),
        constructors: Vec::new(),
        got_symbols: Vec::new(),
    };

    read_interpreter_and_note(&parts, &mut info);
    let pie = read_dynamic(&parts, &mut info);
    info.kind = file_kind(hdr.e_type(e), pie, &info);
    if !matches!(info.kind, FileKind::Executable | FileKind::SharedLibrary) {
        return Ok(info);
    }
    let finds = read_sections(&parts, &mut info);
    if let Some((hdr_addr, hdr)) = finds.eh_frame_hdr {
        info.fdes = fde_ranges(hdr, hdr_addr, finds.eh_frame, e == Endianness::Little);
    }
    read_functions(&parts, &mut info);
    let relative = read_relocations(&parts, machine, &finds.init_arrays, &mut info);
    read_constructors(&finds.init_arrays, &relative, is_64, e, &mut info);
    Ok(info)
}

/// Program headers: the interpreter and the property note (which also exists as a section,
/// but stripped or section-less files keep only the segment).
fn read_interpreter_and_note<Elf: FileHeader<Endian = Endianness>>(
    p: &Parts<'_, '_, Elf>,
    info: &mut ElfInfo<'_>,
) {
    let (e, data) = (p.e, p.data);
    for ph in p.file.elf_program_headers() {
        if ph.p_type(e) == elf::PT_INTERP
            && let Ok(bytes) = ph.data(e, data)
        {
            let s = bytes.split(|b| *b == 0).next().unwrap_or_default();
            info.interpreter = Some(String::from_utf8_lossy(s).into_owned());
        }
        if let Ok(Some(notes)) = ph.notes(e, data) {
            read_isa_note::<Elf>(notes, e, info);
        }
    }
    if info.isa_needed_bits.is_none() {
        for sh in p.file.elf_section_table().iter() {
            if let Ok(Some(notes)) = sh.notes(e, data) {
                read_isa_note::<Elf>(notes, e, info);
            }
        }
    }
}

/// Dynamic section: `DT_NEEDED`, `DT_SONAME`, `DT_INIT`; returns whether `DT_FLAGS_1` says PIE.
fn read_dynamic<Elf: FileHeader<Endian = Endianness>>(
    p: &Parts<'_, '_, Elf>,
    info: &mut ElfInfo<'_>,
) -> bool {
    let mut pie = false;
    let Ok(dynamic) = p.file.elf_dynamic_table() else {
        return pie;
    };
    for d in dynamic.iter() {
        if d.tag == elf::DT_NEEDED || d.tag == elf::DT_SONAME {
            if let Ok(s) = dynamic.string(d) {
                let s = String::from_utf8_lossy(s).into_owned();
                if d.tag == elf::DT_NEEDED {
                    info.needed.push(s);
                } else {
                    info.soname = Some(s);
                }
            }
        } else if d.tag == elf::DT_FLAGS_1 {
            pie = d.val & elf::DF_1_PIE.0 != 0;
        } else if d.tag == elf::DT_INIT && d.val != 0 {
            info.constructors.push(d.val);
        }
    }
    pie
}

/// An `ET_DYN` file is an executable when it says PIE, or has an interpreter and no soname.
fn file_kind(e_type: elf::FileType, pie: bool, info: &ElfInfo<'_>) -> FileKind {
    match e_type {
        t if t == elf::ET_EXEC => FileKind::Executable,
        t if t == elf::ET_DYN => {
            if pie || (info.interpreter.is_some() && info.soname.is_none()) {
                FileKind::Executable
            } else {
                FileKind::SharedLibrary
            }
        }
        t if t == elf::ET_REL => FileKind::Relocatable,
        _ => FileKind::Other,
    }
}

/// Allocated sections: code (sorted by address), writable data, init arrays, `.eh_frame_hdr`.
fn read_sections<'a, Elf: FileHeader<Endian = Endianness>>(
    p: &Parts<'_, 'a, Elf>,
    info: &mut ElfInfo<'a>,
) -> SectionFinds<'a> {
    let (e, data) = (p.e, p.data);
    let sections = p.file.elf_section_table();
    let mut finds = SectionFinds::default();
    for sh in sections.iter() {
        let flags = sh.sh_flags(e).0;
        let addr: u64 = sh.sh_addr(e).into();
        let size: u64 = sh.sh_size(e).into();
        let ty = sh.sh_type(e);
        if flags & elf::SHF_ALLOC.0 == 0 {
            continue;
        }
        if flags & elf::SHF_EXECINSTR.0 != 0 && ty == elf::SHT_PROGBITS {
            if let Ok(bytes) = sh.data(e, data) {
                let name = sections.section_name(e, sh).unwrap_or_default();
                let entsize: u64 = sh.sh_entsize(e).into();
                let plt_entry =
                    name.starts_with(b".plt")
                        .then_some(if entsize >= 8 { entsize } else { 16 });
                info.code.push(CodeSection {
                    addr,
                    bytes,
                    plt_entry,
                });
            }
        } else if flags & elf::SHF_WRITE.0 != 0 {
            info.writable.push((addr, addr.saturating_add(size)));
        }
        if (ty == elf::SHT_INIT_ARRAY || ty == elf::SHT_PREINIT_ARRAY)
            && let Ok(bytes) = sh.data(e, data)
        {
            finds.init_arrays.push((addr, bytes));
        }
        let name = sections.section_name(e, sh).unwrap_or_default();
        if (name == b".eh_frame_hdr" || name == b".eh_frame")
            && let Ok(bytes) = sh.data(e, data)
        {
            if name == b".eh_frame_hdr" {
                finds.eh_frame_hdr = Some((addr, bytes));
            } else {
                finds.eh_frame = Some((addr, bytes));
            }
        }
    }
    info.code.sort_by_key(|c| c.addr);
    finds
}

/// Symbols: functions and ifuncs, with names, from both tables.
fn read_functions<'a, Elf: FileHeader<Endian = Endianness>>(
    p: &Parts<'_, 'a, Elf>,
    info: &mut ElfInfo<'a>,
) {
    let e = p.e;
    for (table, dynamic) in [
        (p.file.elf_symbol_table(), false),
        (p.file.elf_dynamic_symbol_table(), true),
    ] {
        for sym in table.iter() {
            let ty = sym.st_type();
            if ty != elf::STT_FUNC && ty != elf::STT_GNU_IFUNC {
                continue;
            }
            if sym.st_shndx(e) == elf::SHN_UNDEF {
                continue;
            }
            let bind = sym.st_bind();
            let vis = sym.st_visibility();
            let exported = dynamic
                && (bind == elf::STB_GLOBAL || bind == elf::STB_WEAK)
                && (vis == elf::STV_DEFAULT || vis == elf::STV_PROTECTED);
            info.funcs.push(FuncSym {
                addr: sym.st_value(e).into(),
                name: table.symbol_name(e, sym).unwrap_or_default(),
                ifunc: ty == elf::STT_GNU_IFUNC,
                exported,
            });
        }
    }
}

/// Relocations (x86-64 only): `IRELATIVE` resolvers and GOT slot names go into `info`; the
/// `RELATIVE` fix-ups of init-array slots are returned as `(slot, addend)`.
fn read_relocations<'a, Elf: FileHeader<Endian = Endianness>>(
    p: &Parts<'_, 'a, Elf>,
    machine: u16,
    init_arrays: &[(u64, &'a [u8])],
    info: &mut ElfInfo<'a>,
) -> Vec<(u64, u64)> {
    let (e, data) = (p.e, p.data);
    let sections = p.file.elf_section_table();
    let mut relative: Vec<(u64, u64)> = Vec::new();
    if machine != elf::EM_X86_64.0 {
        return relative;
    }
    for sh in sections.iter() {
        let Ok(Some((relas, link))) = sh.rela(e, data) else {
            continue;
        };
        let symtab = sections.symbol_table_by_index(e, data, link).ok();
        for r in relas {
            let ty = r.r_type(e, false).0;
            let off: u64 = r.r_offset(e).into();
            let addend = r.r_addend(e).into() as u64;
            if ty == elf::R_X86_64_IRELATIVE.0 {
                info.irelative.push(addend);
            } else if ty == elf::R_X86_64_RELATIVE.0 {
                if init_arrays
                    .iter()
                    .any(|(a, b)| off >= *a && off < a + b.len() as u64)
                {
                    relative.push((off, addend));
                }
            } else if (ty == elf::R_X86_64_GLOB_DAT.0
                || ty == elf::R_X86_64_64.0
                || ty == elf::R_X86_64_JUMP_SLOT.0)
                && let (Some(idx), Some(symtab)) = (r.symbol(e, false), symtab.as_ref())
                && let Ok(sym) = symtab.symbol(idx)
                && let Ok(name) = symtab.symbol_name(e, sym)
            {
                let defined = (sym.st_shndx(e) != elf::SHN_UNDEF && sym.st_type() == elf::STT_FUNC)
                    .then(|| sym.st_value(e).into());
                info.got_symbols.push((off, name, defined));
            }
        }
    }
    info.got_symbols.sort_unstable();
    relative
}

/// Constructors: each init-array slot's in-file value, or its `RELATIVE` addend when the value
/// is left for the loader to fill in.
fn read_constructors(
    init_arrays: &[(u64, &[u8])],
    relative: &[(u64, u64)],
    is_64: bool,
    e: Endianness,
    info: &mut ElfInfo<'_>,
) {
    let word = if is_64 { 8 } else { 4 };
    for (addr, bytes) in init_arrays {
        for (i, chunk) in bytes.chunks_exact(word).enumerate() {
            let slot = addr + (i * word) as u64;
            let raw = read_word(chunk, e == Endianness::Little);
            let value = if raw != 0 && raw != u64::MAX {
                Some(raw)
            } else {
                relative.iter().find(|(o, _)| *o == slot).map(|(_, a)| *a)
            };
            info.constructors.extend(value);
        }
    }
}

fn read_isa_note<Elf: FileHeader<Endian = Endianness>>(
    mut notes: NoteIterator<'_, Elf>,
    e: Endianness,
    info: &mut ElfInfo<'_>,
) {
    while let Ok(Some(note)) = notes.next() {
        let Some(mut props) = note.gnu_properties(e) else {
            continue;
        };
        while let Ok(Some(p)) = props.next() {
            if p.pr_type() == elf::GNU_PROPERTY_X86_ISA_1_NEEDED
                && let Ok(bits) = p.data_u32(e)
            {
                *info.isa_needed_bits.get_or_insert(0) |= bits;
            }
        }
    }
}

/// The level recorded in an ISA note's bits (`None` if no level bit is set).
pub(crate) fn note_level(bits: Option<u32>) -> Option<Level> {
    bits.and_then(Level::from_isa_note_bits)
}

/// Function ranges from the binary-search table of `.eh_frame_hdr` and the FDEs it points to.
///
/// Only the encodings every Linux toolchain emits are supported: table entries as
/// `DW_EH_PE_datarel | DW_EH_PE_sdata4`, the count as `udata4`, and FDEs whose `pc_begin`
/// is `pcrel | sdata4` followed by a 4-byte `pc_range`. The FDE layout is checked by
/// recomputing `pc_begin` and comparing it with the table; when that fails the range's end
/// is unknown (`end == start`). Anything else yields no ranges and the analysis falls back
/// to symbols. A full `.eh_frame` (CIE augmentation) parser was considered and left out: the
/// header table is present in every linked binary that has unwind info, and these encodings
/// are what GCC, Clang and binutils produce on x86-64 and AArch64.
fn fde_ranges(
    hdr: &[u8],
    hdr_addr: u64,
    eh_frame: Option<(u64, &[u8])>,
    little: bool,
) -> Vec<(u64, u64)> {
    const DATAREL_SDATA4: u8 = 0x3b;
    const UDATA4: u8 = 0x03;
    let [version, ptr_enc, count_enc, table_enc, ..] = *hdr else {
        return Vec::new();
    };
    if version != 1 || count_enc != UDATA4 || table_enc != DATAREL_SDATA4 {
        return Vec::new();
    }
    let ptr_len = match ptr_enc & 0x0f {
        0x03 | 0x0b => 4,
        0x04 | 0x0c => 8,
        _ => return Vec::new(),
    };
    let u32_in = |b: &[u8], off: usize| -> Option<u32> {
        b.get(off..off.checked_add(4)?)
            .map(|w| read_word(w, little) as u32)
    };
    let count_off = 4 + ptr_len;
    let Some(count) = u32_in(hdr, count_off) else {
        return Vec::new();
    };
    let table = count_off + 4;
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let (Some(loc), Some(fde)) = (u32_in(hdr, table + i * 8), u32_in(hdr, table + i * 8 + 4))
        else {
            break;
        };
        let start = hdr_addr.wrapping_add_signed(i64::from(loc as i32));
        let fde_addr = hdr_addr.wrapping_add_signed(i64::from(fde as i32));
        let len = eh_frame.and_then(|(frame_addr, frame)| {
            let off = usize::try_from(fde_addr.checked_sub(frame_addr)?).ok()?;
            let pc_begin = u32_in(frame, off + 8)?;
            let begin =
                (frame_addr + off as u64 + 8).wrapping_add_signed(i64::from(pc_begin as i32));
            (begin == start).then(|| u32_in(frame, off + 12)).flatten()
        });
        out.push((start, start + u64::from(len.unwrap_or(0))));
    }
    out.sort_unstable();
    out
}

/// An unsigned 4- or 8-byte word in the file's byte order.
fn read_word(b: &[u8], little: bool) -> u64 {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate() {
        let shift = if little { i } else { b.len() - 1 - i };
        v |= u64::from(*byte) << (8 * shift);
    }
    v
}

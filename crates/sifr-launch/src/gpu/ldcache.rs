//! The host's loader cache: which shared library names the dynamic loader knows and where they
//! are. Read from `/etc/ld.so.cache` directly (glibc's `glibc-ld.so.cache1.1` format, alone or
//! after the old `ld.so-1.7.0` table), with `ldconfig -p` as the fallback for a cache this
//! parser does not know. Also: the ELF class and machine of a library file, to keep only
//! libraries the host (or its 32-bit compatibility mode) can load.
//!
//! Parsing is bounds-checked and never panics on a corrupt file: a bad cache is an error the
//! caller answers with the fallback. Runs on the host before any namespace change.

use std::path::{Path, PathBuf};

use sifr_arch::ElfIdent;

/// Where glibc keeps the cache.
pub const CACHE_PATH: &str = "/etc/ld.so.cache";

/// Where `ldconfig` is looked for before the host `PATH` (it is in `sbin`, often not on a
/// user's `PATH`).
pub const LDCONFIG_PATHS: &[&str] = &["/sbin/ldconfig", "/usr/sbin/ldconfig"];

const MAGIC_NEW: &[u8] = b"glibc-ld.so.cache";
const VERSION_NEW: &[u8] = b"1.1";
const MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
/// `struct cache_file_new`: magic, version, nlibs, len_strings, flags, padding,
/// extension_offset, unused[3].
const HEADER_NEW: usize = 48;
/// `struct file_entry_new`: flags, key, value, osversion, hwcap.
const ENTRY_NEW: usize = 24;
/// `struct cache_file` (old): magic padded to 12, nlibs.
const HEADER_OLD: usize = 16;
/// `struct file_entry` (old): flags, key, value.
const ENTRY_OLD: usize = 12;

/// One cache entry: the name the loader searches for and the path it loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    #[error("`{path}` is not a loader cache this version understands")]
    Format { path: String },
    #[error("`{path}` is truncated or corrupt at byte {offset}")]
    Corrupt { path: String, offset: usize },
}

/// Parse the bytes of a cache file (`path` is for messages). Entries keep the cache's order,
/// which is the loader's order of preference.
pub fn parse(bytes: &[u8], path: &str) -> Result<Vec<Entry>, CacheError> {
    let corrupt = |offset| CacheError::Corrupt {
        path: path.into(),
        offset,
    };
    let mut base = 0usize;
    if bytes.starts_with(MAGIC_OLD) {
        // glibc < 2.32 writes the old table first; the new one follows, 8-byte aligned.
        let n = u32_at(bytes, 12, false).ok_or_else(|| corrupt(12))? as usize;
        let end = n
            .checked_mul(ENTRY_OLD)
            .and_then(|x| x.checked_add(HEADER_OLD))
            .ok_or_else(|| corrupt(12))?;
        base = end.checked_add(7).ok_or_else(|| corrupt(12))? & !7;
    }
    let head = bytes.get(base..).unwrap_or_default();
    if !head.starts_with(MAGIC_NEW)
        || head.get(MAGIC_NEW.len()..MAGIC_NEW.len() + VERSION_NEW.len()) != Some(VERSION_NEW)
    {
        return Err(CacheError::Format { path: path.into() });
    }
    // Byte 28 says the writer's byte order: 2 little, 3 big, 0 not recorded (the host's).
    let big = match head.get(28) {
        Some(2) => false,
        Some(3) => true,
        Some(0) => cfg!(target_endian = "big"),
        _ => return Err(CacheError::Format { path: path.into() }),
    };
    let n = u32_at(head, 20, big).ok_or_else(|| corrupt(base + 20))? as usize;
    let table_end = n
        .checked_mul(ENTRY_NEW)
        .and_then(|x| x.checked_add(HEADER_NEW))
        .filter(|&e| e <= head.len())
        .ok_or_else(|| corrupt(base + 20))?;
    let mut out = Vec::with_capacity(n);
    for at in (HEADER_NEW..table_end).step_by(ENTRY_NEW) {
        // String offsets count from the start of the new header.
        let key = u32_at(head, at + 4, big).ok_or_else(|| corrupt(base + at))?;
        let value = u32_at(head, at + 8, big).ok_or_else(|| corrupt(base + at))?;
        let name = c_str(head, key as usize).ok_or_else(|| corrupt(base + at + 4))?;
        let lib = c_str(head, value as usize).ok_or_else(|| corrupt(base + at + 8))?;
        out.push(Entry {
            name: name.into(),
            path: lib.into(),
        });
    }
    Ok(out)
}

fn u32_at(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let raw: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    })
}

/// The NUL-terminated UTF-8 string at `at`.
fn c_str(b: &[u8], at: usize) -> Option<&str> {
    let tail = b.get(at..)?;
    let end = tail.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&tail[..end]).ok()
}

/// Parse `ldconfig -p` output: a count line, then `\tNAME (ABI[, hwcap: ...]) => PATH` lines.
pub fn parse_ldconfig_p(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let (left, path) = line.rsplit_once(" => ")?;
            let name = left.trim().split(" (").next()?.trim();
            let path = path.trim();
            (!name.is_empty() && path.starts_with('/')).then(|| Entry {
                name: name.into(),
                path: path.into(),
            })
        })
        .collect()
}

/// Read the host's cache: `/etc/ld.so.cache`, else `ldconfig -p` (found in `sbin` or on
/// `path_env`). The error of the direct read is returned when both fail.
pub fn read_host(path_env: &str) -> Result<Vec<Entry>, CacheError> {
    let direct = std::fs::read(CACHE_PATH)
        .map_err(|_| CacheError::Format {
            path: CACHE_PATH.into(),
        })
        .and_then(|b| parse(&b, CACHE_PATH));
    let err = match direct {
        Ok(entries) => return Ok(entries),
        Err(e) => e,
    };
    tracing::debug!("{err}; asking `ldconfig -p`");
    let ldconfig = LDCONFIG_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| super::find_program("ldconfig", path_env));
    let Some(ldconfig) = ldconfig else {
        return Err(err);
    };
    match std::process::Command::new(&ldconfig).arg("-p").output() {
        Ok(o) if o.status.success() => Ok(parse_ldconfig_p(&String::from_utf8_lossy(&o.stdout))),
        _ => Err(err),
    }
}

/// ELF class and machine of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfKind {
    pub bits64: bool,
    /// `e_machine` (62 x86-64, 3 i386, 183 AArch64, 40 Arm, ...).
    pub machine: u16,
}

/// `EM_386`, `EM_X86_64`, `EM_ARM`, `EM_AARCH64`.
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const EM_ARM: u16 = 40;
const EM_AARCH64: u16 = 183;

/// Class and machine only: the library filter compares those two, as it always has (a cache
/// that lists libraries of the other byte order is not one this filter was asked to judge).
impl From<ElfIdent> for ElfKind {
    fn from(id: ElfIdent) -> ElfKind {
        ElfKind {
            bits64: id.class64,
            machine: id.machine,
        }
    }
}

impl ElfKind {
    /// Read the ELF identification and `e_machine` of `path` (following symlinks); `None` for
    /// anything that is not a readable ELF file.
    pub fn of_file(path: &Path) -> Option<ElfKind> {
        ElfIdent::read(std::fs::File::open(path).ok()?).map(ElfKind::from)
    }

    pub fn of_bytes(head: &[u8]) -> Option<ElfKind> {
        ElfIdent::parse(head).map(ElfKind::from)
    }

    /// The 32-bit kind a host of this kind runs too (i386 on x86-64, Arm on AArch64).
    pub fn compat32(self) -> Option<ElfKind> {
        let machine = match (self.bits64, self.machine) {
            (true, EM_X86_64) => EM_386,
            (true, EM_AARCH64) => EM_ARM,
            _ => return None,
        };
        Some(ElfKind {
            bits64: false,
            machine,
        })
    }

    /// The kind of the running program, which is the host's native kind.
    pub fn host() -> Option<ElfKind> {
        ElfKind::of_file(Path::new("/proc/self/exe"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new-format cache with the given entries, strings after the table (as glibc lays it).
    fn cache(entries: &[(&str, &str)], big: bool) -> Vec<u8> {
        let n = entries.len();
        let strings_at = HEADER_NEW + n * ENTRY_NEW;
        let mut strings = Vec::new();
        let mut table = Vec::new();
        let put = |v: u32, out: &mut Vec<u8>| {
            out.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        for (name, path) in entries {
            let key = (strings_at + strings.len()) as u32;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let value = (strings_at + strings.len()) as u32;
            strings.extend_from_slice(path.as_bytes());
            strings.push(0);
            put(0x0303, &mut table);
            put(key, &mut table);
            put(value, &mut table);
            put(0, &mut table);
            table.extend_from_slice(&[0; 8]);
        }
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC_NEW);
        out.extend_from_slice(VERSION_NEW);
        put(n as u32, &mut out);
        put(strings.len() as u32, &mut out);
        out.push(if big { 3 } else { 2 });
        out.extend_from_slice(&[0; 19]);
        out.extend(table);
        out.extend(strings);
        out
    }

    #[test]
    fn new_format_entries_in_cache_order_either_byte_order() {
        for big in [false, true] {
            let b = cache(
                &[
                    ("libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"),
                    ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
                ],
                big,
            );
            let e = parse(&b, "c").unwrap();
            assert_eq!(e.len(), 2);
            assert_eq!(e[0].name, "libcuda.so.1");
            assert_eq!(
                e[0].path,
                PathBuf::from("/usr/lib/x86_64-linux-gnu/libcuda.so.1")
            );
            assert_eq!(e[1].name, "libc.so.6");
        }
    }

    #[test]
    fn old_table_before_the_new_one_is_skipped() {
        let new = cache(
            &[("libnvidia-ml.so.1", "/usr/lib64/libnvidia-ml.so.1")],
            false,
        );
        // Old header with 1 entry: 16 + 12 = 28 bytes, padded to 32.
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC_OLD);
        b.push(0);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&[0; 4]);
        assert_eq!(b.len(), 32);
        b.extend(new);
        let e = parse(&b, "c").unwrap();
        assert_eq!(e[0].name, "libnvidia-ml.so.1");
    }

    #[test]
    fn corrupt_caches_are_errors_not_panics() {
        let good = cache(&[("libcuda.so.1", "/x/libcuda.so.1")], false);
        for cut in 0..good.len() {
            // Every truncation either parses (cut after the last needed byte) or errs.
            let _ = parse(&good[..cut], "c");
        }
        assert!(matches!(
            parse(&good[..good.len() - 3], "c"),
            Err(CacheError::Corrupt { .. })
        ));
        let mut huge = good.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse(&huge, "c"), Err(CacheError::Corrupt { .. })));
        let mut wild = good.clone();
        let key_at = HEADER_NEW + 4;
        wild[key_at..key_at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(parse(&wild, "c"), Err(CacheError::Corrupt { .. })));
        assert!(matches!(
            parse(b"not a cache", "c"),
            Err(CacheError::Format { .. })
        ));
        let mut old = MAGIC_OLD.to_vec();
        old.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(parse(&old, "c"), Err(CacheError::Format { .. })));
    }

    #[test]
    fn ldconfig_p_text() {
        let text = "3 libs found in cache `/etc/ld.so.cache'\n\
            \tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1\n\
            \tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1\n\
            \tlibfoo.so (libc6,x86-64, hwcap: 0x0000000000000002) => /usr/lib/glibc-hwcaps/x86-64-v3/libfoo.so\n\
            Cache generated by: ldconfig (GNU libc) stable release version 2.36\n";
        let e = parse_ldconfig_p(text);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1].path,
            PathBuf::from("/usr/lib/i386-linux-gnu/libcuda.so.1")
        );
        assert_eq!(e[2].name, "libfoo.so");
    }

    #[test]
    fn the_host_cache_reads_the_same_directly_and_through_ldconfig() {
        // Debian's glibc (libc-bin) has both: CI must.
        let Ok(bytes) = std::fs::read(CACHE_PATH) else {
            sifr_testkit::skip(format_args!("no {CACHE_PATH} on this host"));
            return;
        };
        let Some(ldconfig) = LDCONFIG_PATHS.iter().find(|p| Path::new(p).is_file()) else {
            sifr_testkit::skip("no ldconfig on this host");
            return;
        };
        let direct = parse(&bytes, CACHE_PATH).unwrap();
        let o = std::process::Command::new(ldconfig)
            .arg("-p")
            .output()
            .unwrap();
        let text = parse_ldconfig_p(&String::from_utf8_lossy(&o.stdout));
        assert!(!direct.is_empty());
        assert_eq!(direct, text);
    }

    #[test]
    fn elf_identification() {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 62;
        let k = ElfKind::of_bytes(&h).unwrap();
        assert_eq!(
            k,
            ElfKind {
                bits64: true,
                machine: EM_X86_64
            }
        );
        assert_eq!(k.compat32().unwrap().machine, EM_386);
        h[4] = 1;
        h[18] = 3;
        assert!(!ElfKind::of_bytes(&h).unwrap().bits64);
        assert_eq!(ElfKind::of_bytes(b"#!/bin/sh\n"), None);
        assert_eq!(ElfKind::of_bytes(&h[..10]), None);
        assert!(ElfKind::host().is_some());
    }
}

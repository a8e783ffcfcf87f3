//! Extended attributes: the xattr id table and the key/value stream, including values stored
//! out of line (shared between inodes).
//!
//! Counts and sizes are bounded (at most 65536 pairs per inode, values at most 64 KiB, the
//! kernel's own limit) before anything is allocated. This module must not apply xattrs to files.

use super::Archive;
use super::error::{Error, Result};
use super::inode::Inode;
use super::superblock::NO_TABLE;
use super::tables::Lookup;

/// Largest xattr value (Linux XATTR_SIZE_MAX).
const MAX_VALUE: u32 = 65536;
/// Most pairs accepted for one inode.
const MAX_PAIRS: u32 = 65536;
/// Most name + value bytes accepted for one inode. Out-of-line values can be shared, so a tiny
/// image could otherwise make one inode's list expand to gigabytes (65536 pairs x 64 KiB).
const MAX_TOTAL: usize = 4 << 20;

/// The xattr id table and where the key/value stream starts.
#[derive(Debug)]
pub(crate) struct XattrTable {
    kv_start: u64,
    ids: Lookup,
}

/// One extended attribute: full name (with its `user.`/`trusted.`/`security.` prefix) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl XattrTable {
    pub(crate) fn open(a: &Archive) -> Result<Option<Self>> {
        let pos = a.sb.xattr_id_table;
        if pos == NO_TABLE {
            return Ok(None);
        }
        let mut h = [0u8; 16];
        a.src.read_exact("xattr id table header", pos, &mut h)?;
        let kv_start = u64::from_le_bytes(h[0..8].try_into().unwrap_or_default());
        let count = u32::from_le_bytes(h[8..12].try_into().unwrap_or_default());
        if kv_start >= pos {
            return Err(Error::table(
                "xattr",
                format!("key/value start {kv_start} is not before the id table ({pos})"),
            ));
        }
        let ids = Lookup::open(a, "xattr id", pos + 16, u64::from(count), 16)?;
        Ok(Some(XattrTable { kv_start, ids }))
    }
}

fn prefix(ty: u16) -> Option<&'static [u8]> {
    Some(match ty & 0xff {
        0 => b"user.",
        1 => b"trusted.",
        2 => b"security.",
        _ => return None,
    })
}

impl Archive {
    /// Extended attributes of `inode`, in stored order (empty when it has none).
    pub fn xattrs(&self, inode: &Inode) -> Result<Vec<Xattr>> {
        let Some(index) = inode.xattr else {
            return Ok(Vec::new());
        };
        let bad = |what: String| Error::BadXattr { index, what };
        let t = self
            .xattrs
            .as_ref()
            .ok_or_else(|| bad("inode has xattrs but image has no xattr table".into()))?;
        let mut e = [0u8; 16];
        t.ids.entry(self, u64::from(index), &mut e)?;
        let r = u64::from_le_bytes(e[0..8].try_into().unwrap_or_default());
        let count = u32::from_le_bytes(e[8..12].try_into().unwrap_or_default());
        if count > MAX_PAIRS {
            return Err(bad(format!("{count} pairs")));
        }
        let end = self.sb.xattr_id_table;
        let mut c = self
            .cursor(t.kv_start + (r >> 16), (r & 0xffff) as u16, end)
            .map_err(|e| bad(e.to_string()))?;
        let mut out = Vec::new();
        let mut total = 0usize;
        for _ in 0..count {
            let ty = c.u16()?;
            let nlen = c.u16()?;
            let p = prefix(ty).ok_or_else(|| bad(format!("unknown xattr type {ty:#x}")))?;
            let mut name = p.to_vec();
            name.extend(c.bytes(usize::from(nlen))?);
            let vlen = c.u32()?;
            let value = if ty & 0x100 != 0 {
                if vlen != 8 {
                    return Err(bad(format!("out-of-line value reference of {vlen} bytes")));
                }
                let vr = c.u64()?;
                let mut vc = self
                    .cursor(t.kv_start + (vr >> 16), (vr & 0xffff) as u16, end)
                    .map_err(|e| bad(e.to_string()))?;
                let len = vc.u32()?;
                if len > MAX_VALUE {
                    return Err(bad(format!("value of {len} bytes")));
                }
                vc.bytes(len as usize)?
            } else {
                if vlen > MAX_VALUE {
                    return Err(bad(format!("value of {vlen} bytes")));
                }
                c.bytes(vlen as usize)?
            };
            total += name.len() + value.len();
            if total > MAX_TOTAL {
                return Err(bad(format!("names and values exceed {MAX_TOTAL} bytes")));
            }
            out.push(Xattr { name, value });
        }
        Ok(out)
    }
}

//! The on-disk ext2/ext3/ext4 inode as libext2fs hands it over (`struct ext2_inode_large`), and
//! the field encodings a server needs: 32-bit ids split in two halves, 64-bit sizes, times with
//! their nanosecond/epoch extension, device numbers in the block map.
//!
//! The layout is the on-disk format, which libext2fs's ABI shares; the offsets were checked
//! against `/usr/include/ext2fs/ext2_fs.h` of e2fsprogs 1.47 (`offsetof` of every field used
//! here; the size assertion below keeps them honest).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `struct ext2_inode_large` (160 bytes): the 128-byte base inode and the extension that
/// inodes of 256 bytes carry (nanoseconds, creation time, project id).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Inode {
    pub i_mode: u16,
    pub i_uid: u16,
    pub i_size: u32,
    pub i_atime: u32,
    pub i_ctime: u32,
    pub i_mtime: u32,
    pub i_dtime: u32,
    pub i_gid: u16,
    pub i_links_count: u16,
    pub i_blocks: u32,
    pub i_flags: u32,
    pub l_i_version: u32,
    pub i_block: [u32; 15],
    pub i_generation: u32,
    pub i_file_acl: u32,
    pub i_size_high: u32,
    pub i_faddr: u32,
    pub l_i_blocks_hi: u16,
    pub l_i_file_acl_high: u16,
    pub l_i_uid_high: u16,
    pub l_i_gid_high: u16,
    pub l_i_checksum_lo: u16,
    pub l_i_reserved: u16,
    // ext2_inode_large from here (offset 128).
    pub i_extra_isize: u16,
    pub i_checksum_hi: u16,
    pub i_ctime_extra: u32,
    pub i_mtime_extra: u32,
    pub i_atime_extra: u32,
    pub i_crtime: u32,
    pub i_crtime_extra: u32,
    pub i_version_hi: u32,
    pub i_projid: u32,
}

const _: () = assert!(std::mem::size_of::<Inode>() == 160);
const _: () = assert!(std::mem::offset_of!(Inode, i_block) == 40);
const _: () = assert!(std::mem::offset_of!(Inode, i_size_high) == 108);
const _: () = assert!(std::mem::offset_of!(Inode, l_i_blocks_hi) == 116);
const _: () = assert!(std::mem::offset_of!(Inode, i_extra_isize) == 128);
const _: () = assert!(std::mem::offset_of!(Inode, i_atime_extra) == 140);

/// `S_IFMT` and the file types, as stored in `i_mode`.
pub const S_IFMT: u16 = 0o170000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFLNK: u16 = 0o120000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFBLK: u16 = 0o060000;
pub const S_IFIFO: u16 = 0o010000;
pub const S_IFSOCK: u16 = 0o140000;

/// Which of an inode's times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    Access,
    Modify,
    Change,
}

/// Bytes of the extension a time's nanosecond field needs to be present.
fn extra_needed(t: Time) -> u16 {
    match t {
        Time::Change => 8,
        Time::Modify => 12,
        Time::Access => 16,
    }
}

impl Inode {
    /// The file type bits of the mode.
    pub fn kind(&self) -> u16 {
        self.i_mode & S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == S_IFDIR
    }

    pub fn uid(&self) -> u32 {
        u32::from(self.i_uid) | (u32::from(self.l_i_uid_high) << 16)
    }

    pub fn gid(&self) -> u32 {
        u32::from(self.i_gid) | (u32::from(self.l_i_gid_high) << 16)
    }

    pub fn set_uid(&mut self, uid: u32) {
        self.i_uid = uid as u16;
        self.l_i_uid_high = (uid >> 16) as u16;
    }

    pub fn set_gid(&mut self, gid: u32) {
        self.i_gid = gid as u16;
        self.l_i_gid_high = (gid >> 16) as u16;
    }

    /// The size in bytes (`i_size_high` holds the upper half for regular files and, on
    /// `largedir` filesystems, directories).
    pub fn size(&self) -> u64 {
        u64::from(self.i_size) | (u64::from(self.i_size_high) << 32)
    }

    /// 512-byte sectors allocated (without `huge_file`, which ext2/ext3 lack).
    pub fn sectors(&self) -> u64 {
        u64::from(self.i_blocks) | (u64::from(self.l_i_blocks_hi) << 32)
    }

    /// The device number of a character or block device, as `(major, minor)`: the old 16-bit
    /// encoding in `i_block[0]`, or the new 32-bit one in `i_block[1]` (as Linux writes them).
    pub fn device(&self) -> (u32, u32) {
        let old = self.i_block[0];
        if old != 0 {
            ((old >> 8) & 0xff, old & 0xff)
        } else {
            let new = self.i_block[1];
            ((new & 0xfff00) >> 8, (new & 0xff) | ((new >> 12) & 0xfff00))
        }
    }

    /// Stores a device number the way Linux does: the old encoding when both halves fit a
    /// byte, the new one otherwise.
    pub fn set_device(&mut self, major: u32, minor: u32) {
        if major < 256 && minor < 256 {
            self.i_block[0] = (major << 8) | minor;
            self.i_block[1] = 0;
        } else {
            self.i_block[0] = 0;
            self.i_block[1] = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        }
        self.i_block[2] = 0;
    }

    /// A time, with nanoseconds where the inode has room for them.
    pub fn time(&self, t: Time) -> SystemTime {
        let (sec, extra) = match t {
            Time::Access => (self.i_atime, self.i_atime_extra),
            Time::Modify => (self.i_mtime, self.i_mtime_extra),
            Time::Change => (self.i_ctime, self.i_ctime_extra),
        };
        let has_extra = self.i_extra_isize >= extra_needed(t);
        // Seconds are signed 32-bit; the two low bits of the extra field extend the epoch.
        let mut secs = i64::from(sec as i32);
        let mut nanos = 0;
        if has_extra {
            secs += i64::from(extra & 3) << 32;
            nanos = extra >> 2;
        }
        if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nanos.min(999_999_999))
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }

    /// Sets a time; the nanoseconds are kept where the inode has room for them.
    pub fn set_time(&mut self, t: Time, when: SystemTime) {
        let (secs, nanos) = match when.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => (-(e.duration().as_secs() as i64), 0),
        };
        let low = secs as i32;
        let epoch = ((secs - i64::from(low)) >> 32) as u32 & 3;
        let extra = (nanos << 2) | epoch;
        let has_extra = self.i_extra_isize >= extra_needed(t);
        let (s, x) = match t {
            Time::Access => (&mut self.i_atime, &mut self.i_atime_extra),
            Time::Modify => (&mut self.i_mtime, &mut self.i_mtime_extra),
            Time::Change => (&mut self.i_ctime, &mut self.i_ctime_extra),
        };
        *s = low as u32;
        if has_extra {
            *x = extra;
        }
    }

    /// Sets all three times to `when`.
    pub fn touch_all(&mut self, when: SystemTime) {
        for t in [Time::Access, Time::Modify, Time::Change] {
            self.set_time(t, when);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_in_halves() {
        let mut i = Inode::default();
        i.set_uid(0x0001_0002);
        i.set_gid(70000);
        assert_eq!((i.i_uid, i.l_i_uid_high), (2, 1));
        assert_eq!((i.uid(), i.gid()), (0x0001_0002, 70000));
    }

    #[test]
    fn devices_round_trip_in_both_encodings() {
        let mut i = Inode::default();
        i.set_device(0, 0);
        assert_eq!(i.i_block[..2], [0, 0]);
        assert_eq!(i.device(), (0, 0));
        i.set_device(8, 1);
        assert_eq!(i.i_block[0], 0x801);
        assert_eq!(i.device(), (8, 1));
        i.set_device(259, 70000);
        assert_eq!(i.i_block[0], 0);
        assert_eq!(i.device(), (259, 70000));
    }

    #[test]
    fn times_keep_nanoseconds_only_with_room() {
        let when = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let mut small = Inode::default();
        small.set_time(Time::Modify, when);
        assert_eq!(
            small.time(Time::Modify),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let mut large = Inode {
            i_extra_isize: 32,
            ..Default::default()
        };
        large.touch_all(when);
        assert_eq!(large.time(Time::Access), when);
        // After 2038: the epoch bits carry the 33rd bit.
        let late = UNIX_EPOCH + Duration::new(3_000_000_000, 5);
        large.set_time(Time::Change, late);
        assert_eq!(large.time(Time::Change), late);
    }
}

//! Directory entries through libext2fs's iterator (`ext2fs_dir_iterate2`): listing them, and
//! repointing one in place (renames, whiteouts, a moved directory's `..`).

use std::ffi::{c_char, c_int, c_void};

use super::{
    DIRENT_ABORT, DIRENT_CHANGED, DIRENT_FLAG_INCLUDE_EMPTY, FLAG_IGNORE_CSUM_ERRORS, FS_FLAGS, Fs,
    Ino, Result, ft,
};

impl Fs {
    /// Calls `f(name, ino, file type)` for each entry of directory `dir`, `.` and `..`
    /// included, in on-disk order, until it returns `false`.
    pub fn dir_entries(&self, dir: Ino, mut f: impl FnMut(&[u8], Ino, u8) -> bool) -> Result<()> {
        self.iterate(dir, 0, &mut |e: &mut Dirent| {
            if f(e.name(), e.inode(), e.file_type()) {
                0
            } else {
                DIRENT_ABORT
            }
        })
    }

    /// Points the entry `name` of `dir` at `ino` (of entry type `ft`) in place; `Ok(false)` if
    /// there is no such entry. Used to rename over an existing name, to leave a whiteout in
    /// place of a name, and to repoint a moved directory's `..`.
    pub fn replace_entry(&mut self, dir: Ino, name: &[u8], ino: Ino, ft: u8) -> Result<bool> {
        let mut done = false;
        self.iterate(dir, 0, &mut |e: &mut Dirent| {
            if e.inode() != 0 && e.name() == name {
                e.set(ino, ft);
                done = true;
                DIRENT_CHANGED | DIRENT_ABORT
            } else {
                0
            }
        })?;
        Ok(done)
    }

    /// Rewrites directory `dir`'s first block with a fresh checksum, as a changed inode
    /// generation needs on `metadata_csum` filesystems (the old checksum is not verified).
    pub fn rechecksum_dir(&mut self, dir: Ino) -> Result<()> {
        // SAFETY: IGNORE_CSUM_ERRORS is a library flag of `fs->flags`; it only turns checksum
        // mismatches on read into successes, and is cleared again below.
        unsafe { self.set_flags(FLAG_IGNORE_CSUM_ERRORS) };
        let r = self.replace_entry(dir, b".", dir, ft::DIR);
        // SAFETY: as above.
        unsafe { self.clear_flags(FLAG_IGNORE_CSUM_ERRORS) };
        r.map(drop)
    }

    /// # Safety
    /// Only flags the library defines for `fs->flags`.
    unsafe fn set_flags(&self, flags: c_int) {
        // SAFETY: `flags` is the int member at FS_FLAGS of the live handle.
        unsafe {
            let p = self.fs.cast::<u8>().add(FS_FLAGS) as *mut c_int;
            *p |= flags;
        }
    }

    fn iterate(
        &self,
        dir: Ino,
        flags: c_int,
        f: &mut dyn FnMut(&mut Dirent) -> c_int,
    ) -> Result<()> {
        unsafe extern "C" fn trampoline(
            _dir: u32,
            _entry: c_int,
            dirent: *mut c_void,
            _offset: c_int,
            _blocksize: c_int,
            _buf: *mut c_char,
            private: *mut c_void,
        ) -> c_int {
            // SAFETY: `private` is the `&mut &mut dyn FnMut` passed below, alive for the
            // iteration; `dirent` points to a `struct ext2_dir_entry` inside the library's block
            // buffer, whose name bytes follow it (name_len of them).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                let f = &mut *(private as *mut &mut dyn FnMut(&mut Dirent) -> c_int);
                f(&mut Dirent(dirent.cast()))
            }));
            // Never unwind into C.
            r.unwrap_or(DIRENT_ABORT)
        }
        let mut f = f;
        // SAFETY: the callback and its data outlive the call; a null block buffer makes the
        // library allocate one.
        let rc = unsafe {
            (self.lib.dir_iterate2)(
                self.fs,
                dir,
                flags & !DIRENT_FLAG_INCLUDE_EMPTY,
                std::ptr::null_mut(),
                trampoline,
                (&mut f as *mut &mut dyn FnMut(&mut Dirent) -> c_int).cast(),
            )
        };
        self.check("list directory", dir, rc)
    }
}

/// A view of one `struct ext2_dir_entry` during [`Fs::iterate`]: `inode` (u32), `rec_len`
/// (u16), `name_len` (u8 length, u8 file type), then the name.
struct Dirent(*mut u8);

impl Dirent {
    fn inode(&self) -> Ino {
        // SAFETY: the entry's first 8 bytes are its header (see the type's docs).
        unsafe { std::ptr::read_unaligned(self.0 as *const u32) }
    }

    fn name_len(&self) -> usize {
        // SAFETY: byte 6 is the low byte of name_len: the name's length.
        usize::from(unsafe { *self.0.add(6) })
    }

    fn file_type(&self) -> u8 {
        // SAFETY: byte 7 is the high byte of name_len: the file type (filetype feature).
        unsafe { *self.0.add(7) }
    }

    fn name(&self) -> &[u8] {
        // SAFETY: name_len bytes of name follow the 8-byte header inside the block buffer.
        unsafe { std::slice::from_raw_parts(self.0.add(8), self.name_len()) }
    }

    fn set(&mut self, ino: Ino, ft: u8) {
        // SAFETY: writes the inode field and the file-type byte of the header; the library
        // writes the block back because the callback answers DIRENT_CHANGED.
        unsafe {
            std::ptr::write_unaligned(self.0 as *mut u32, ino);
            *self.0.add(7) = ft;
        }
    }
}

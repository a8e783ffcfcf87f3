//! The data of one inode, through libext2fs's file handles (`ext2fs_file_*`).

use super::lib::FilePtr;
use super::{Error, FILE_WRITE, Fs, Ino, Inode, Result};

impl Fs {
    /// Opens the data of inode `ino` for reading, or writing too.
    pub fn file(&self, ino: Ino, write: bool) -> Result<File<'_>> {
        let mut f: FilePtr = std::ptr::null_mut();
        // SAFETY: a null inode pointer makes the library read the inode itself.
        let rc = unsafe {
            (self.lib.file_open2)(
                self.fs,
                ino,
                std::ptr::null_mut(),
                if write { FILE_WRITE } else { 0 },
                &mut f,
            )
        };
        self.check("open", ino, rc)?;
        Ok(File { fs: self, f, ino })
    }
}

/// An open file of a [`Fs`]; closed (its inode written) on drop.
pub struct File<'a> {
    fs: &'a Fs,
    f: FilePtr,
    ino: Ino,
}

impl File<'_> {
    fn seek(&mut self, off: u64) -> Result<()> {
        let mut pos = 0u64;
        // SAFETY: a live file handle; whence 0 is SEEK_SET.
        let rc = unsafe { (self.fs.lib.file_llseek)(self.f, off, 0, &mut pos) };
        self.fs.check("seek in", self.ino, rc)
    }

    /// Reads up to `buf.len()` bytes at `off`; fewer only at the end of the file.
    pub fn read_at(&mut self, off: u64, buf: &mut [u8]) -> Result<usize> {
        self.seek(off)?;
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(1 << 30) as u32;
            let mut got = 0u32;
            // SAFETY: the destination is the unfilled tail of `buf`, `want` bytes long at most.
            let rc = unsafe {
                (self.fs.lib.file_read)(self.f, buf[done..].as_mut_ptr().cast(), want, &mut got)
            };
            self.fs.check("read", self.ino, rc)?;
            if got == 0 {
                break;
            }
            done += got as usize;
        }
        Ok(done)
    }

    /// Writes all of `data` at `off`, growing the file as needed.
    pub fn write_at(&mut self, off: u64, data: &[u8]) -> Result<()> {
        self.seek(off)?;
        let mut done = 0;
        while done < data.len() {
            let want = (data.len() - done).min(1 << 30) as u32;
            let mut put = 0u32;
            // SAFETY: the source is the unwritten tail of `data`, `want` bytes long at most.
            let rc = unsafe {
                (self.fs.lib.file_write)(self.f, data[done..].as_ptr().cast(), want, &mut put)
            };
            self.fs.check("write", self.ino, rc)?;
            if put == 0 {
                return Err(Error::new(
                    "write",
                    self.fs.subject(self.ino),
                    libc::ENOSPC as _,
                ));
            }
            done += put as usize;
        }
        Ok(())
    }

    /// Sets the file's size, freeing the blocks past a shorter end.
    pub fn set_size(&mut self, size: u64) -> Result<()> {
        // SAFETY: a live file handle.
        let rc = unsafe { (self.fs.lib.file_set_size2)(self.f, size) };
        self.fs.check("resize", self.ino, rc)
    }

    /// The inode as the file handle holds it (sizes and blocks updated by writes).
    pub fn inode(&self) -> Inode {
        // SAFETY: the handle's inode lives as long as the handle; ext2_file's inode is a full
        // `ext2_inode_large` in e2fsprogs 1.43 and later, but only its 128-byte base is copied
        // here to stay within what every version guarantees.
        unsafe {
            let p = (self.fs.lib.file_get_inode)(self.f) as *const u8;
            let mut out = Inode::default();
            std::ptr::copy_nonoverlapping(p, (&mut out as *mut Inode).cast::<u8>(), 128);
            out
        }
    }

    /// Writes the file's buffered block and inode and releases the handle.
    pub fn close(self) -> Result<()> {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: the handle is live and not used again.
        let rc = unsafe { (me.fs.lib.file_close)(me.f) };
        me.fs.check("close", me.ino, rc)
    }
}

impl Drop for File<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle is live and not used again.
        unsafe { (self.fs.lib.file_close)(self.f) };
    }
}

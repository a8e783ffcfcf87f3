//! Positional I/O over an image's backing store ([`ReadAt`] / [`WriteAt`]), implemented for
//! `File` (pread/pwrite, no shared cursor) and for in-memory `Vec<u8>`. Nothing else in the
//! crate touches a file descriptor.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Reads at absolute offsets.
pub trait ReadAt {
    /// Fills `buf` from `offset`; a short read is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// Writes at absolute offsets and resizes.
pub trait WriteAt: ReadAt {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl WriteAt for File {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.as_slice().len() as u64)
    }
}

impl ReadAt for &[u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let start = usize::try_from(offset)
            .ok()
            .filter(|&s| s <= <[u8]>::len(self));
        let end = start
            .and_then(|s| s.checked_add(buf.len()))
            .filter(|&e| e <= <[u8]>::len(self));
        match (start, end) {
            (Some(s), Some(e)) => {
                buf.copy_from_slice(&self[s..e]);
                Ok(())
            }
            _ => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
    fn size(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
}

impl WriteAt for Vec<u8> {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let start =
            usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let end = start + buf.len();
        if self.as_slice().len() < end {
            self.resize(end, 0);
        }
        self[start..end].copy_from_slice(buf);
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.resize(len, 0);
        Ok(())
    }
}

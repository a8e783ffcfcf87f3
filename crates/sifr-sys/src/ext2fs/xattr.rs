//! The extended attributes of one inode, through libext2fs's attribute handles
//! (`ext2fs_xattr*`): names with their namespace prefixes, values as bytes.

use std::ffi::{CStr, c_char, c_int, c_void};

use super::lib::XattrPtr;
use super::{ET_EA_KEY_NOT_FOUND, Fs, Ino, Result, cstring};

impl Fs {
    /// The extended attributes of inode `ino`, read.
    pub fn xattrs(&mut self, ino: Ino) -> Result<Xattrs<'_>> {
        let mut h: XattrPtr = std::ptr::null_mut();
        // SAFETY: a live handle; `h` receives an owned handle only on success.
        let rc = unsafe { (self.lib.xattrs_open)(self.fs, ino, &mut h) };
        self.check("open the attributes of", ino, rc)?;
        let x = Xattrs { fs: self, h, ino };
        // SAFETY: `h` is the live handle just opened.
        let rc = unsafe { (x.fs.lib.xattrs_read)(x.h) };
        x.fs.check("read the attributes of", ino, rc)?;
        Ok(x)
    }
}

/// The extended attributes of one inode, read into memory; changes are written by each call.
pub struct Xattrs<'a> {
    fs: &'a mut Fs,
    h: XattrPtr,
    ino: Ino,
}

impl Xattrs<'_> {
    /// The value of attribute `name`, if set.
    pub fn get(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let c = cstring("get attribute", name)?;
        let mut v: *mut c_void = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: `c` is NUL-terminated; on success `v` is a buffer of `len` bytes that the
        // library allocated and we free with its allocator.
        let rc = unsafe { (self.fs.lib.xattr_get)(self.h, c.as_ptr(), &mut v, &mut len) };
        if rc == ET_EA_KEY_NOT_FOUND {
            return Ok(None);
        }
        self.fs.check("get an attribute of", self.ino, rc)?;
        // SAFETY: see above; `free_mem` takes the address of the pointer.
        let out = unsafe {
            let out = if v.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(v as *const u8, len).to_vec()
            };
            (self.fs.lib.free_mem)((&mut v as *mut *mut c_void).cast());
            out
        };
        Ok(Some(out))
    }

    /// Sets attribute `name` to `value` and writes the attributes.
    pub fn set(&mut self, name: &[u8], value: &[u8]) -> Result<()> {
        let c = cstring("set attribute", name)?;
        // SAFETY: `c` is NUL-terminated; the value is copied by the library.
        let rc = unsafe {
            (self.fs.lib.xattr_set)(self.h, c.as_ptr(), value.as_ptr().cast(), value.len())
        };
        self.fs.check("set an attribute of", self.ino, rc)
    }

    /// Removes attribute `name`; `Ok(false)` if it was not set.
    pub fn remove(&mut self, name: &[u8]) -> Result<bool> {
        if self.get(name)?.is_none() {
            return Ok(false);
        }
        let c = cstring("remove attribute", name)?;
        // SAFETY: `c` is NUL-terminated.
        let rc = unsafe { (self.fs.lib.xattr_remove)(self.h, c.as_ptr()) };
        self.fs.check("remove an attribute of", self.ino, rc)?;
        Ok(true)
    }

    /// The names of the attributes set, with their namespace prefixes (`user.x`).
    pub fn names(&self) -> Result<Vec<Vec<u8>>> {
        unsafe extern "C" fn each(
            name: *mut c_char,
            _value: *mut c_char,
            _len: usize,
            private: *mut c_void,
        ) -> c_int {
            // SAFETY: `private` is the Vec below, alive for the iteration; `name` is a
            // NUL-terminated string owned by the library for the call.
            let pushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                let out = &mut *(private as *mut Vec<Vec<u8>>);
                out.push(CStr::from_ptr(name).to_bytes().to_vec());
            }));
            // Never unwind into C; 1 is XATTR_ABORT.
            if pushed.is_ok() { 0 } else { 1 }
        }
        let mut out: Vec<Vec<u8>> = Vec::new();
        // SAFETY: callback and data outlive the call.
        let rc = unsafe {
            (self.fs.lib.xattrs_iterate)(self.h, each, (&mut out as *mut Vec<Vec<u8>>).cast())
        };
        self.fs.check("list the attributes of", self.ino, rc)?;
        Ok(out)
    }
}

impl Drop for Xattrs<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle is live; close frees it (and, in libext2fs before 1.44, writes
        // pending changes).
        unsafe { (self.fs.lib.xattrs_close)(&mut self.h) };
    }
}

//! `libext2fs.so.2`, loaded at run time with `dlopen`: the function table and its one loader.
//!
//! e2fsprogs ships the library on every distribution (Debian marks e2fsprogs Essential), while
//! its headers are in a -dev package a build host may lack, so nothing is linked at build time.
//! The prototypes below are those of `/usr/include/ext2fs/ext2fs.h` (e2fsprogs 1.47); the
//! library's ABI has kept them since 1.43, the oldest release with every symbol used here.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

use super::Inode;

pub(super) type Errcode = libc::c_long;
/// `ext2_filsys`: a pointer to `struct struct_ext2_filsys`.
pub(super) type FsPtr = *mut c_void;
/// `ext2_file_t`.
pub(super) type FilePtr = *mut c_void;
/// `struct ext2_xattr_handle *`.
pub(super) type XattrPtr = *mut c_void;

pub(super) type DirCallback = unsafe extern "C" fn(
    dir: u32,
    entry: c_int,
    dirent: *mut c_void,
    offset: c_int,
    blocksize: c_int,
    buf: *mut c_char,
    private: *mut c_void,
) -> c_int;

pub(super) type XattrCallback = unsafe extern "C" fn(
    name: *mut c_char,
    value: *mut c_char,
    value_len: usize,
    private: *mut c_void,
) -> c_int;

/// The library's entry points (names as in `ext2fs.h`, without the `ext2fs_` prefix).
pub(super) struct Lib {
    pub open2: unsafe extern "C" fn(
        *const c_char,
        *const c_char,
        c_int,
        c_int,
        c_uint,
        *mut c_void,
        *mut FsPtr,
    ) -> Errcode,
    /// The value of the library's `unix_io_manager` variable.
    pub unix_io_manager: *mut c_void,
    pub close2: unsafe extern "C" fn(FsPtr, c_int) -> Errcode,
    pub free: unsafe extern "C" fn(FsPtr),
    pub flush: unsafe extern "C" fn(FsPtr) -> Errcode,
    pub read_bitmaps: unsafe extern "C" fn(FsPtr) -> Errcode,
    pub read_inode_full: unsafe extern "C" fn(FsPtr, u32, *mut Inode, c_int) -> Errcode,
    pub write_inode_full: unsafe extern "C" fn(FsPtr, u32, *mut Inode, c_int) -> Errcode,
    pub write_new_inode: unsafe extern "C" fn(FsPtr, u32, *mut Inode) -> Errcode,
    pub lookup:
        unsafe extern "C" fn(FsPtr, u32, *const c_char, c_int, *mut c_char, *mut u32) -> Errcode,
    pub dir_iterate2:
        unsafe extern "C" fn(FsPtr, u32, c_int, *mut c_char, DirCallback, *mut c_void) -> Errcode,
    pub link: unsafe extern "C" fn(FsPtr, u32, *const c_char, u32, c_int) -> Errcode,
    pub unlink: unsafe extern "C" fn(FsPtr, u32, *const c_char, u32, c_int) -> Errcode,
    pub expand_dir: unsafe extern "C" fn(FsPtr, u32) -> Errcode,
    pub new_inode: unsafe extern "C" fn(FsPtr, u32, c_int, *mut c_void, *mut u32) -> Errcode,
    pub inode_alloc_stats2: unsafe extern "C" fn(FsPtr, u32, c_int, c_int),
    pub mkdir: unsafe extern "C" fn(FsPtr, u32, u32, *const c_char) -> Errcode,
    pub symlink: unsafe extern "C" fn(FsPtr, u32, u32, *const c_char, *const c_char) -> Errcode,
    pub file_open2: unsafe extern "C" fn(FsPtr, u32, *mut Inode, c_int, *mut FilePtr) -> Errcode,
    pub file_close: unsafe extern "C" fn(FilePtr) -> Errcode,
    pub file_read: unsafe extern "C" fn(FilePtr, *mut c_void, c_uint, *mut c_uint) -> Errcode,
    pub file_write: unsafe extern "C" fn(FilePtr, *const c_void, c_uint, *mut c_uint) -> Errcode,
    pub file_llseek: unsafe extern "C" fn(FilePtr, u64, c_int, *mut u64) -> Errcode,
    pub file_set_size2: unsafe extern "C" fn(FilePtr, u64) -> Errcode,
    pub file_get_inode: unsafe extern "C" fn(FilePtr) -> *mut Inode,
    pub punch: unsafe extern "C" fn(FsPtr, u32, *mut Inode, *mut c_char, u64, u64) -> Errcode,
    pub free_ext_attr: unsafe extern "C" fn(FsPtr, u32, *mut Inode) -> Errcode,
    pub inode_has_valid_blocks2: unsafe extern "C" fn(FsPtr, *mut Inode) -> c_int,
    pub is_fast_symlink: unsafe extern "C" fn(*mut Inode) -> c_int,
    pub xattrs_open: unsafe extern "C" fn(FsPtr, u32, *mut XattrPtr) -> Errcode,
    pub xattrs_read: unsafe extern "C" fn(XattrPtr) -> Errcode,
    pub xattrs_close: unsafe extern "C" fn(*mut XattrPtr) -> Errcode,
    pub xattr_get:
        unsafe extern "C" fn(XattrPtr, *const c_char, *mut *mut c_void, *mut usize) -> Errcode,
    pub xattr_set: unsafe extern "C" fn(XattrPtr, *const c_char, *const c_void, usize) -> Errcode,
    pub xattr_remove: unsafe extern "C" fn(XattrPtr, *const c_char) -> Errcode,
    pub xattrs_iterate: unsafe extern "C" fn(XattrPtr, XattrCallback, *mut c_void) -> Errcode,
    /// `ext2fs_free_mem(void *ptr)`: frees `*ptr` (takes the address of the pointer).
    pub free_mem: unsafe extern "C" fn(*mut c_void) -> Errcode,
    pub blocks_count: unsafe extern "C" fn(*mut c_void) -> u64,
    pub free_blocks_count: unsafe extern "C" fn(*mut c_void) -> u64,
    pub r_blocks_count: unsafe extern "C" fn(*mut c_void) -> u64,
    /// com_err's `error_message`, from the library's dependency `libcom_err.so.2`.
    pub error_message: Option<unsafe extern "C" fn(Errcode) -> *const c_char>,
}

// SAFETY: the table holds function pointers and the address of the library's I/O manager, all
// immutable for the life of the process (the library is never unloaded); calling them is what
// needs care, and every caller is `unsafe` code that serialises use of each filesystem.
unsafe impl Send for Lib {}
// SAFETY: as above; nothing in the table is ever written after loading.
unsafe impl Sync for Lib {}

/// The soname loaded; the library of e2fsprogs 1.42 and later.
pub const SONAME: &str = "libext2fs.so.2";

static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();

/// The loaded library, loading it on first use. The error says what was missing.
pub(super) fn get() -> Result<&'static Lib, String> {
    LIB.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn dlerror_text() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl* call on
    // this thread; it is copied at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// A symbol's address as the function pointer type `F`.
///
/// # Safety
/// `F` must be an `unsafe extern "C" fn` type whose signature is the symbol's C prototype.
unsafe fn fn_ptr<F: Copy>(p: *mut c_void) -> F {
    const { assert!(size_of::<F>() == size_of::<*mut c_void>()) };
    // SAFETY: same size (asserted); a data and a function pointer share their representation
    // on Linux; the signature is the caller's promise.
    unsafe { std::mem::transmute_copy(&p) }
}

fn load() -> Result<Lib, String> {
    let soname = CString::new(SONAME).map_err(|e| e.to_string())?;
    // SAFETY: dlopen with a NUL-terminated name; the handle is kept for the process's life (never
    // dlclosed), so every symbol taken from it stays valid. RTLD_LOCAL keeps its symbols out of
    // the global namespace; RTLD_NOW fails here rather than at a first call.
    let handle = unsafe { libc::dlopen(soname.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "cannot load {SONAME} (from e2fsprogs): {}",
            dlerror_text()
        ));
    }
    let sym = |name: &str| -> Result<*mut c_void, String> {
        let c = CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: `handle` is a live dlopen handle and `c` a NUL-terminated name; dlsym also
        // searches the library's dependencies (com_err's `error_message`).
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(format!(
                "{SONAME} has no symbol `{name}`: {}",
                dlerror_text()
            ))
        } else {
            Ok(p)
        }
    };
    macro_rules! f {
        ($name:literal) => {
            // SAFETY: the symbol is the library's function of that name, whose C prototype
            // (ext2fs.h, e2fsprogs 1.43 to 1.47) the field's type spells out; a data pointer and
            // a function pointer have the same size and representation on Linux.
            unsafe { fn_ptr(sym($name)?) }
        };
    }
    let io_var = sym("unix_io_manager")?;
    // SAFETY: `unix_io_manager` is an `io_manager` variable (a pointer to a static struct) in the
    // library's data, initialised before dlopen returns; we read the pointer it holds.
    let unix_io_manager = unsafe { *(io_var as *const *mut c_void) };
    let error_message = match sym("error_message") {
        Ok(p) => {
            if let Ok(init) = sym("initialize_ext2_error_table") {
                // SAFETY: `initialize_ext2_error_table(void)` registers the library's message
                // table with com_err once; it is idempotent and runs while loading, which
                // `OnceLock` serialises.
                unsafe {
                    let init: unsafe extern "C" fn() = fn_ptr(init);
                    init();
                }
            }
            // SAFETY: com_err's `const char *error_message(errcode_t)`.
            Some(unsafe { fn_ptr(p) })
        }
        Err(_) => None,
    };
    Ok(Lib {
        open2: f!("ext2fs_open2"),
        unix_io_manager,
        close2: f!("ext2fs_close2"),
        free: f!("ext2fs_free"),
        flush: f!("ext2fs_flush"),
        read_bitmaps: f!("ext2fs_read_bitmaps"),
        read_inode_full: f!("ext2fs_read_inode_full"),
        write_inode_full: f!("ext2fs_write_inode_full"),
        write_new_inode: f!("ext2fs_write_new_inode"),
        lookup: f!("ext2fs_lookup"),
        dir_iterate2: f!("ext2fs_dir_iterate2"),
        link: f!("ext2fs_link"),
        unlink: f!("ext2fs_unlink"),
        expand_dir: f!("ext2fs_expand_dir"),
        new_inode: f!("ext2fs_new_inode"),
        inode_alloc_stats2: f!("ext2fs_inode_alloc_stats2"),
        mkdir: f!("ext2fs_mkdir"),
        symlink: f!("ext2fs_symlink"),
        file_open2: f!("ext2fs_file_open2"),
        file_close: f!("ext2fs_file_close"),
        file_read: f!("ext2fs_file_read"),
        file_write: f!("ext2fs_file_write"),
        file_llseek: f!("ext2fs_file_llseek"),
        file_set_size2: f!("ext2fs_file_set_size2"),
        file_get_inode: f!("ext2fs_file_get_inode"),
        punch: f!("ext2fs_punch"),
        free_ext_attr: f!("ext2fs_free_ext_attr"),
        inode_has_valid_blocks2: f!("ext2fs_inode_has_valid_blocks2"),
        is_fast_symlink: f!("ext2fs_is_fast_symlink"),
        xattrs_open: f!("ext2fs_xattrs_open"),
        xattrs_read: f!("ext2fs_xattrs_read"),
        xattrs_close: f!("ext2fs_xattrs_close"),
        xattr_get: f!("ext2fs_xattr_get"),
        xattr_set: f!("ext2fs_xattr_set"),
        xattr_remove: f!("ext2fs_xattr_remove"),
        xattrs_iterate: f!("ext2fs_xattrs_iterate"),
        free_mem: f!("ext2fs_free_mem"),
        blocks_count: f!("ext2fs_blocks_count"),
        free_blocks_count: f!("ext2fs_free_blocks_count"),
        r_blocks_count: f!("ext2fs_r_blocks_count"),
        error_message,
    })
}

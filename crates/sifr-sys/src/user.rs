//! Host user and group database lookups (NSS through glibc's `getpwuid_r`/`getgrgid_r`), done
//! before any namespace change so that winbind/sssd/LDAP answers are the host's.
//!
//! Must not: be called after `pivot_root` (NSS would read the container's files) or after a
//! user namespace was created (NSS modules may talk to daemons that check credentials).

use std::ffi::CStr;

/// A host passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// Look up `uid` in the host's user database; `None` when there is no entry.
pub fn user_by_uid(uid: u32) -> Option<UserEntry> {
    with_nss_buffer(|buf| {
        // SAFETY: getpwuid_r writes into `pwd` and the caller-provided buffer of `buf.len()`
        // bytes, and sets `result` to `&pwd` or null; all pointers are valid for the call. The
        // strings it points to live in `buf`, which we read before it is dropped or reused.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            if rc != 0 {
                return Err(rc);
            }
            if result.is_null() {
                return Ok(None);
            }
            let s = |p: *const libc::c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            Ok(Some(UserEntry {
                name: s(pwd.pw_name),
                uid: pwd.pw_uid,
                gid: pwd.pw_gid,
                gecos: s(pwd.pw_gecos),
                home: s(pwd.pw_dir),
                shell: s(pwd.pw_shell),
            }))
        }
    })
}

/// Look up the user `name` in the host's user database; `None` when there is no entry (or the
/// name contains a NUL byte).
pub fn user_by_name(name: &str) -> Option<UserEntry> {
    let cname = std::ffi::CString::new(name).ok()?;
    with_nss_buffer(|buf| {
        // SAFETY: as in `user_by_uid`, with getpwnam_r and a NUL-terminated name that outlives
        // the call.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            if rc != 0 {
                return Err(rc);
            }
            if result.is_null() {
                return Ok(None);
            }
            let s = |p: *const libc::c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            Ok(Some(UserEntry {
                name: s(pwd.pw_name),
                uid: pwd.pw_uid,
                gid: pwd.pw_gid,
                gecos: s(pwd.pw_gecos),
                home: s(pwd.pw_dir),
                shell: s(pwd.pw_shell),
            }))
        }
    })
}

/// The name of group `gid` in the host's group database.
pub fn group_name(gid: u32) -> Option<String> {
    with_nss_buffer(|buf| {
        // SAFETY: as for getpwuid_r above: all out-pointers are valid for the call and the
        // returned strings live in `buf`, read before it is reused.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrgid_r(
                gid,
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            if rc != 0 {
                return Err(rc);
            }
            if result.is_null() || grp.gr_name.is_null() {
                return Ok(None);
            }
            Ok(Some(
                CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned(),
            ))
        }
    })
}

/// Run a reentrant NSS lookup (`getpwuid_r`, `getgrgid_r`) with a buffer for its strings:
/// `lookup` returns the entry it read from the buffer, `Ok(None)` when there is none, or the
/// lookup's error number. On `ERANGE` the buffer grows fourfold (from 16 KiB, while under
/// 1 MiB) and the lookup runs again; any other error means no entry.
fn with_nss_buffer<T>(
    mut lookup: impl FnMut(&mut [u8]) -> Result<Option<T>, libc::c_int>,
) -> Option<T> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match lookup(&mut buf) {
            Err(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            r => return r.ok().flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_every_user_database() {
        let root = user_by_uid(0).expect("uid 0 has a passwd entry");
        assert_eq!(root.uid, 0);
        assert_eq!(root.name, "root");
        assert_eq!(group_name(0).as_deref(), Some("root"));
    }

    #[test]
    fn unknown_uid_has_no_entry() {
        assert_eq!(user_by_uid(3_999_999_999), None);
    }
}

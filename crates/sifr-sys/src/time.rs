//! The local time zone at an instant, as the C library knows it (`localtime_r`, which reads
//! `TZ` and `/etc/localtime`, the same sources as Go's `time.Local`), so that dates the CLI
//! prints can be in local time as Apptainer prints them.

/// Seconds east of UTC of the local time zone at Unix time `secs`; 0 (UTC) when the C
/// library cannot convert that instant.
pub fn local_utc_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `t` is a valid `time_t` and `tm` a writable `struct tm` for the whole call;
    // `localtime_r` writes only into `tm` and returns null on failure.
    let r = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if r.is_null() {
        return 0;
    }
    // SAFETY: `localtime_r` succeeded, so it filled `tm` (and it was zeroed before anyway).
    let tm = unsafe { tm.assume_init() };
    tm.tm_gmtoff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_is_a_plausible_zone() {
        // Any real zone lies within UTC-12..UTC+14; the epoch and a recent date both convert.
        for t in [0, 1_787_062_365] {
            let off = local_utc_offset(t);
            assert!((-12 * 3600..=14 * 3600).contains(&off), "{off}");
        }
    }
}

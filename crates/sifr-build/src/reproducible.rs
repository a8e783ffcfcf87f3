//! Reproducible builds: the one time that dates everything an image build writes.
//!
//! With `SOURCE_DATE_EPOCH` (or `--reproducible`, which takes the source image's creation time,
//! as Apptainer does) the image is dated by that time instead of now: the build-date labels,
//! the SIF header and descriptor times, the SquashFS superblock, and every file time later than
//! it (clamped, as `mksquashfs` and `tar --clamp-mtime` do: what the build wrote moves back to
//! the epoch, a base image's older files keep their dates). The SIF's UUID is then derived
//! from the image's bytes ([`sifr_sif::Image::set_content_id`]), not drawn at random. Everything
//! else an image holds is already independent of when, where and how often it is built (names
//! in byte order, inode numbers in walk order, sorted JSON); `docs/build.md` says which inputs
//! a user must pin.

/// How a build dates the image it writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceDate {
    /// Not reproducible: now, and a random UUID.
    #[default]
    Now,
    /// `SOURCE_DATE_EPOCH`: seconds since 1970-01-01 UTC.
    Epoch(i64),
    /// `--reproducible`: the base image's creation time (its OCI config's `created`); where the
    /// base has none, `fallback` (`SOURCE_DATE_EPOCH`), else not reproducible.
    FromSource { fallback: Option<i64> },
}

/// A `SOURCE_DATE_EPOCH` that is not whole seconds.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid SOURCE_DATE_EPOCH `{value}`: expected whole seconds since 1970-01-01 00:00 UTC (as `date +%s` prints)"
)]
pub struct BadEpoch {
    pub value: String,
}

impl SourceDate {
    /// From the value of `SOURCE_DATE_EPOCH` (if set) and the `--reproducible` switch.
    pub fn from_env(epoch: Option<&str>, reproducible: bool) -> Result<SourceDate, BadEpoch> {
        let epoch = epoch
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| BadEpoch {
                    value: v.to_string(),
                })
            })
            .transpose()?;
        Ok(match (epoch, reproducible) {
            (fallback, true) => SourceDate::FromSource { fallback },
            (Some(t), false) => SourceDate::Epoch(t),
            (None, false) => SourceDate::Now,
        })
    }

    /// The epoch that dates an image whose base image has the OCI config `config` (none for
    /// bases that are not OCI images); `None` when the image is not reproducible.
    pub fn epoch(&self, config: Option<&[u8]>) -> Option<i64> {
        match *self {
            SourceDate::Now => None,
            SourceDate::Epoch(t) => Some(t),
            SourceDate::FromSource { fallback } => config.and_then(created_time).or(fallback),
        }
    }

    /// Whether the build asked to be reproducible.
    pub fn requested(&self) -> bool {
        *self != SourceDate::Now
    }
}

/// An OCI image config's creation time (`created`, RFC 3339), in seconds since the epoch.
pub fn created_time(config: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Created {
        created: Option<String>,
    }
    let c: Created = serde_json::from_slice(config).ok()?;
    parse_rfc3339(c.created.as_deref()?)
}

/// Seconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `...+01:00`).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let num = |s: &str| s.parse::<i64>().ok();
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(i) => time.split_at(i),
        None => return None,
    };
    let mut c = clock.splitn(3, ':');
    let (h, mi) = (num(c.next()?)?, num(c.next()?)?);
    let sec = num(c.next()?.split('.').next()?)?;
    let off = match offset.as_bytes().first() {
        Some(b'Z' | b'z') => 0,
        Some(sign) => {
            let (oh, om) = offset[1..].split_once(':')?;
            let v = num(oh)? * 3600 + num(om)? * 60;
            if *sign == b'-' { -v } else { v }
        }
        None => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T13:34:56+01:00"),
            Some(1_709_210_096)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(
            created_time(br#"{"created":"1970-01-02T00:00:00Z","architecture":"amd64"}"#),
            Some(86_400)
        );
    }

    #[test]
    fn the_environment_and_the_switch_choose_the_date() {
        assert_eq!(SourceDate::from_env(None, false).unwrap(), SourceDate::Now);
        assert_eq!(
            SourceDate::from_env(Some("1700000000"), false).unwrap(),
            SourceDate::Epoch(1_700_000_000)
        );
        assert_eq!(
            SourceDate::from_env(Some("5"), true).unwrap(),
            SourceDate::FromSource { fallback: Some(5) }
        );
        let e = SourceDate::from_env(Some("yesterday"), false).unwrap_err();
        assert!(e.to_string().contains("`yesterday`"), "{e}");
    }

    #[test]
    fn reproducible_takes_the_source_date_then_the_epoch() {
        let cfg = br#"{"created":"1970-01-02T00:00:00Z"}"#;
        let dated = SourceDate::FromSource { fallback: Some(7) };
        // Apptainer's --reproducible: the source image's date wins over SOURCE_DATE_EPOCH.
        assert_eq!(dated.epoch(Some(cfg)), Some(86_400));
        assert_eq!(dated.epoch(Some(b"{}")), Some(7));
        assert_eq!(dated.epoch(None), Some(7));
        let undated = SourceDate::FromSource { fallback: None };
        assert_eq!(undated.epoch(None), None);
        assert_eq!(SourceDate::Epoch(3).epoch(Some(cfg)), Some(3));
        assert_eq!(SourceDate::Now.epoch(Some(cfg)), None);
    }
}

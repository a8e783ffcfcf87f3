//! The text `siftool` / `apptainer sif` prints for `header`, `list` and `info`, rendered to
//! strings byte for byte (Go `tabwriter` alignment, Go time and size formatting). Returns text;
//! never prints.

use std::fmt::Write as _;

use crate::descriptor::{Descriptor, Extra, Link};
use crate::error::Error;
use crate::header::{GO_ZERO_TIME, Header};
use crate::load::Image;
use crate::storage::ReadAt;
use crate::types::{Arch, DataType, HashType};

/// Go's `time.Time.String()` of `time.Unix(secs, 0).UTC()`: `2020-06-30 00:01:56 +0000 UTC`.
pub fn go_time_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
/// Public so the image's build labels date themselves with the same calendar.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// siftool's human size: `%d B` below 1024, else rounded `%.0f KiB/MiB/...`.
pub fn readable_size(size: i64) -> String {
    if -1024 < size && size < 1024 {
        return format!("{size} B");
    }
    let units = b"KMGTPE";
    let (mut div, mut exp) = (1024u64, 0usize);
    let mut n = size / 1024;
    while n <= -1024 || 1024 <= n {
        div *= 1024;
        exp += 1;
        n /= 1024;
    }
    format!(
        "{:.0} {}iB",
        (size as f64 / div as f64).round(),
        units[exp] as char
    )
}

/// Go `text/tabwriter` with minwidth 0, tabwidth 0, the given padding, space fill, no flags,
/// for rows whose cells are all tab-terminated except the last.
fn tabwrite(rows: &[Vec<String>], padding: usize) -> String {
    let cols = rows
        .iter()
        .map(|r| r.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().take(r.len().saturating_sub(1)).enumerate() {
            widths[i] = widths[i].max(c.chars().count() + padding);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| (*s).to_owned()).collect()
}

/// `siftool header`.
pub fn header_text(h: &Header) -> String {
    let mut rows = Vec::new();
    let script = String::from_utf8_lossy(h.launch_script()).into_owned();
    if !script.is_empty() {
        rows.push(row(&[
            "Launch Script:",
            script.strip_suffix('\n').unwrap_or(&script),
        ]));
    }
    rows.push(row(&["Version:", &h.version_text()]));
    if h.arch() != Arch::Unknown {
        rows.push(row(&["Primary Architecture:", h.arch().go_name()]));
    }
    if !h.id_is_nil() {
        rows.push(row(&["ID:", &h.id_text()]));
    }
    if h.created_at != GO_ZERO_TIME {
        rows.push(row(&["Created At:", &go_time_utc(h.created_at)]));
    }
    if h.modified_at != GO_ZERO_TIME {
        rows.push(row(&["Modified At:", &go_time_utc(h.modified_at)]));
    }
    rows.push(row(&["Descriptors Free:", &h.descriptors_free.to_string()]));
    rows.push(row(&[
        "Descriptors Total:",
        &h.descriptors_total.to_string(),
    ]));
    rows.push(row(&[
        "Descriptors Offset:",
        &h.descriptors_offset.to_string(),
    ]));
    rows.push(row(&[
        "Descriptors Size:",
        &readable_size(h.descriptors_size),
    ]));
    rows.push(row(&["Data Offset:", &h.data_offset.to_string()]));
    rows.push(row(&["Data Size:", &readable_size(h.data_size)]));
    tabwrite(&rows, 1)
}

const RULE: &str = "------------------------------------------------------------------------------";

/// `siftool list`.
pub fn list_text<S: ReadAt>(img: &Image<S>) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "{RULE}");
    let _ = writeln!(
        w,
        "{:<4} {:<8} {:<8} {:<26} |TYPE",
        "ID", "|GROUP", "|LINK", "|SIF POSITION (start-end)"
    );
    let _ = writeln!(w, "{RULE}");
    for d in img.descriptors() {
        let _ = write!(w, "{:<4} ", d.id);
        match d.group() {
            None => {
                let _ = write!(w, "|{:<7} ", "NONE");
            }
            Some(g) => {
                let _ = write!(w, "|{g:<7} ");
            }
        }
        let _ = match d.link() {
            Link::None => write!(w, "|{:<7} ", "NONE"),
            Link::Group(g) => write!(w, "|{g:<3} (G) "),
            Link::Object(o) => write!(w, "|{o:<7} "),
        };
        let pos = format!(
            "|{}-{} ",
            d.offset_raw,
            d.offset_raw.wrapping_add(d.size_raw)
        );
        let _ = write!(w, "{pos:<26} ");
        let dt = d.data_type();
        let _ = match d.extra() {
            Extra::Partition(p) => writeln!(w, "|{dt} ({}/{}/{})", p.fs, p.part, p.arch),
            // Go prints nothing, not even a newline, when the hash type is unknown.
            Extra::Signature(s) if matches!(s.hash, HashType::Unknown(_)) => Ok(()),
            Extra::Signature(s) => writeln!(w, "|{dt} ({})", s.hash),
            Extra::CryptoMessage { format, message } => writeln!(w, "|{dt} ({format}/{message})"),
            Extra::Sbom(f) => writeln!(w, "|{dt} ({f})"),
            _ => writeln!(w, "|{dt}"),
        };
    }
    w
}

/// `siftool info <id>`.
pub fn info_text<S: ReadAt>(img: &Image<S>, id: u32) -> Result<String, Error> {
    let d = img.descriptor(id)?;
    descriptor_info_text(d)
}

/// `siftool info` for one descriptor.
pub fn descriptor_info_text(d: &Descriptor) -> Result<String, Error> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut add = |k: &str, v: String| rows.push(vec![String::new(), k.to_owned(), v]);
    add("Data Type:", d.data_type().to_string());
    add("ID:", d.id.to_string());
    add(
        "Group ID:",
        d.group().map_or("NONE".to_owned(), |g| g.to_string()),
    );
    add(
        "Linked ID:",
        match d.link() {
            Link::None => "NONE".to_owned(),
            Link::Group(g) => format!("{g} (G)"),
            Link::Object(o) => o.to_string(),
        },
    );
    add("Offset:", d.offset_raw.to_string());
    add("Size:", d.size_raw.to_string());
    if d.created_at != GO_ZERO_TIME {
        add("Created At:", go_time_utc(d.created_at));
    }
    if d.modified_at != GO_ZERO_TIME {
        add("Modified At:", go_time_utc(d.modified_at));
    }
    let name = d.name();
    if !name.is_empty() {
        add("Name:", name);
    }
    match (d.data_type(), d.extra()) {
        (DataType::Partition, Extra::Partition(p)) => {
            add("Filesystem Type:", p.fs.to_string());
            add("Partition Type:", p.part.to_string());
            add("Architecture:", p.arch.to_string());
        }
        (_, Extra::Signature(s)) => {
            if let HashType::Unknown(v) = s.hash {
                return Err(Error::UnknownHashType { id: d.id, value: v });
            }
            add("Hash Type:", s.hash.to_string());
            if let Some(fp) = s.fingerprint {
                add("Entity:", hex::encode_upper(fp));
            }
        }
        (_, Extra::CryptoMessage { format, message }) => {
            add("Format Type:", format.to_string());
            add("Message Type:", message.to_string());
        }
        (_, Extra::Sbom(f)) => add("Format:", f.to_string()),
        (_, Extra::OciDigest(h)) => add("Digest:", h),
        _ => {}
    }
    Ok(tabwrite(&rows, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_format() {
        assert_eq!(go_time_utc(1593475316), "2020-06-30 00:01:56 +0000 UTC");
        assert_eq!(go_time_utc(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_time_utc(GO_ZERO_TIME), "0001-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn sizes() {
        assert_eq!(readable_size(0), "0 B");
        assert_eq!(readable_size(28080), "27 KiB");
        assert_eq!(readable_size(270928), "265 KiB");
        assert_eq!(readable_size(3 << 20), "3 MiB");
    }
}

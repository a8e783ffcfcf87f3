//! `labels.json`: the build labels Apptainer adds, its date formats, and its merge rules.
//!
//! Merge order (later wins): labels already in the image's `labels.json`, then the
//! `/.build.labels` file that `%post` may write through `$APPTAINER_LABELS` (removed once read),
//! then the build labels. `%labels` come last but only fill keys that are still free unless
//! the build is forced. The file is Go's `MarshalIndent` with a tab (keys sorted, no final
//! newline).

use std::collections::BTreeMap;

use sifr_deffile::Header;

/// When the build happened, given by the caller (no clock is read here). Apptainer uses the
/// local time (or `SOURCE_DATE_EPOCH`); pass the zone you want recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTime {
    /// Seconds since the Unix epoch.
    pub unix: i64,
    /// Offset of the recorded zone from UTC, in seconds (east positive).
    pub utc_offset: i32,
    /// The zone's abbreviation as it appears in `org.label-schema.build-date` (`UTC`, `CDT`).
    pub zone: String,
}

impl BuildTime {
    /// A time recorded in UTC.
    pub fn utc(unix: i64) -> BuildTime {
        BuildTime {
            unix,
            utc_offset: 0,
            zone: "UTC".to_owned(),
        }
    }

    fn civil(&self) -> Civil {
        civil(self.unix + i64::from(self.utc_offset))
    }

    /// `org.opencontainers.image.created`: RFC 3339 with seconds, `Z` for UTC.
    pub fn rfc3339(&self) -> String {
        let c = self.civil();
        let zone = if self.utc_offset == 0 {
            "Z".to_owned()
        } else {
            let sign = if self.utc_offset < 0 { '-' } else { '+' };
            let off = self.utc_offset.unsigned_abs() / 60;
            format!("{sign}{:02}:{:02}", off / 60, off % 60)
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
            c.year, c.month, c.day, c.hour, c.min, c.sec
        )
    }

    /// `org.label-schema.build-date`: `Weekday_Day_Month_Year_H:M:S_ZONE`, no zero padding
    /// (for example `Tuesday_18_August_2026_9:12:45_CDT`).
    pub fn label_schema(&self) -> String {
        const DAYS: [&str; 7] = [
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
        ];
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let c = self.civil();
        format!(
            "{}_{}_{}_{}_{}:{}:{}_{}",
            DAYS[c.weekday],
            c.day,
            MONTHS[(c.month - 1) as usize],
            c.year,
            c.hour,
            c.min,
            c.sec,
            self.zone
        )
    }
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    min: i64,
    sec: i64,
    /// 0 = Sunday.
    weekday: usize,
}

/// Calendar fields of a Unix time (proleptic Gregorian, the SIF renderer's calendar).
fn civil(t: i64) -> Civil {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (year, month, day) = sifr_sif::render::civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: secs / 3600,
        min: secs / 60 % 60,
        sec: secs % 60,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
    }
}

/// Parse `KEY value` lines as Apptainer reads `%labels`, `%applabels` and `/.build.labels`:
/// blank and `#` lines skipped, the key ends at the first space, the value is trimmed, and a
/// repeated key takes the last value.
pub fn parse_label_lines(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.trim().split('\n') {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    out
}

/// The header keywords as Apptainer's parser keeps them (lower case) with their values, for
/// the `org.label-schema.usage.singularity.deffile.<key>` labels.
pub(crate) fn header_pairs(h: &Header) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(b) = &h.bootstrap {
        out.push(("bootstrap".to_owned(), b.value.as_str().to_owned()));
    }
    out.extend(
        h.keyword_values()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.value.clone())),
    );
    for (i, url) in &h.other_urls {
        out.push((format!("otherurl{i}"), url.value.clone()));
    }
    out
}

/// Inputs to the labels every build adds.
pub(crate) struct BuildLabelInputs<'a> {
    pub time: &'a BuildTime,
    pub version: &'a str,
    pub has_help: bool,
    /// Header pairs; empty when the header labels are not to be (re)written.
    pub header: &'a [(String, String)],
    pub base: Option<(&'a str, &'a str)>,
    pub arch: &'a str,
    pub variant: Option<&'a str>,
}

/// Add (overwriting) the build labels to `labels`.
pub(crate) fn add_build_labels(labels: &mut BTreeMap<String, String>, i: &BuildLabelInputs<'_>) {
    let mut set = |k: &str, v: &str| {
        labels.insert(k.to_owned(), v.to_owned());
    };
    set("org.label-schema.schema-version", "1.0");
    set("org.opencontainers.image.created", &i.time.rfc3339());
    set("org.label-schema.build-date", &i.time.label_schema());
    set("org.label-schema.usage.apptainer.version", i.version);
    if i.has_help {
        set("org.label-schema.usage", "/.singularity.d/runscript.help");
        set(
            "org.label-schema.usage.apptainer.runscript.help",
            "/.singularity.d/runscript.help",
        );
    }
    for (k, v) in i.header {
        set(
            &format!("org.label-schema.usage.singularity.deffile.{k}"),
            v,
        );
    }
    if let Some((name, digest)) = i.base {
        set("org.opencontainers.image.base.name", name);
        set("org.opencontainers.image.base.digest", digest);
    }
    set("org.opencontainers.image.architecture", i.arch);
    if let Some(v) = i.variant.filter(|v| !v.is_empty()) {
        set("org.opencontainers.image.variant", v);
    }
    set("org.label-schema.build-arch", i.arch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        // 2026-08-18 14:12:45 UTC, recorded in CDT (UTC-5), as in the reference example.
        let t = BuildTime {
            unix: 1_787_062_365,
            utc_offset: -5 * 3600,
            zone: "CDT".to_owned(),
        };
        assert_eq!(t.label_schema(), "Tuesday_18_August_2026_9:12:45_CDT");
        assert_eq!(t.rfc3339(), "2026-08-18T09:12:45-05:00");
        let u = BuildTime::utc(0);
        assert_eq!(u.label_schema(), "Thursday_1_January_1970_0:0:0_UTC");
        assert_eq!(u.rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            BuildTime::utc(951_782_400).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn label_lines() {
        let m = parse_label_lines("\n  # c\nA b  c \nB\nA  again\n\tT\tx\n");
        assert_eq!(m["A"], "again");
        assert_eq!(m["B"], "");
        assert_eq!(m["T\tx"], "");
        assert_eq!(m.len(), 3);
    }
}

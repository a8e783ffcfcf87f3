//! `sifr instance list`: the running instances, in Apptainer's columns or its JSON, which
//! scripts parse (singularity-compose's `ps` reads `instance`, `pid`, `ip` and `img`).
//!
//! The layouts are Apptainer's (`internal/app/apptainer/instance_linux.go`,
//! `PrintInstanceList`): a table aligned as Go's `tabwriter` with a padding of 4, or JSON
//! indented with tabs whose keys come in the order `instance`, `pid`, `img`, `ip`,
//! `logErrPath`, `logOutPath`.

use clap::Args;
use serde::Serialize;

use super::instance_state::{Glob, State};
use crate::report::{AlreadyReported, Hinted};
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the instances whose names match this pattern (`*`, `?`, `[a-z]`; default all).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Print JSON (`{"instances": [{"instance", "pid", "img", "ip", "logErrPath",
    /// "logOutPath"}]}`) (also APPTAINER_JSON).
    #[arg(short, long)]
    pub json: bool,
    /// Show the paths of each instance's stderr and stdout logs (also APPTAINER_LOGS).
    #[arg(short, long)]
    pub logs: bool,
    /// Also list hidden instances (Apptainer's `--sharens` ones; sifr makes none) (also
    /// APPTAINER_ALL).
    #[arg(short, long)]
    pub all: bool,
    /// As root: list the instances of this user (also APPTAINER_USER).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
}

pub fn list(mut a: ListArgs, s: &Settings) -> anyhow::Result<u8> {
    a.json = super::instance::switch_twin(a.json, "json", &["JSON"])?;
    a.logs = super::instance::switch_twin(a.logs, "logs", &["LOGS"])?;
    a.all = super::instance::switch_twin(a.all, "all", &["ALL"])?;
    a.user = a.user.or_else(|| super::instance::text_twin(&["USER"]));
    if a.json && a.logs {
        return Err(Hinted::new(
            "`--json` and `--logs` cannot be used together",
            "JSON output already has the log paths (`logErrPath`, `logOutPath`)",
        )
        .into());
    }
    let owner = super::instance::owner_for(a.user.as_deref(), "list", s)?;
    let pattern = match a.name.as_deref() {
        None => Glob::all(),
        Some(p) => Glob::parse(p).map_err(|e| AlreadyReported {
            summary: format!("could not list instances: {e}"),
            code: crate::exit::FAILURE,
        })?,
    };
    let found = owner.matching(&pattern);
    let out = if a.json {
        json(&found)?
    } else if a.logs {
        logs_table(&found)
    } else {
        table(&found)
    };
    print!("{out}");
    Ok(crate::exit::OK)
}

/// One instance in `--json`, keys in Apptainer's order.
#[derive(Serialize)]
struct Item<'a> {
    instance: &'a str,
    pid: i32,
    img: String,
    ip: &'a str,
    #[serde(rename = "logErrPath")]
    log_err: String,
    #[serde(rename = "logOutPath")]
    log_out: String,
}

#[derive(Serialize)]
struct Listing<'a> {
    instances: Vec<Item<'a>>,
}

/// `--json`: as Go's `json.Encoder` with a tab indent writes it, newline included, `<`, `>`
/// and `&` escaped as Go escapes them.
fn json(found: &[State]) -> anyhow::Result<String> {
    use serde::Serialize as _;
    let listing = Listing {
        instances: found
            .iter()
            .map(|st| Item {
                instance: &st.name,
                pid: st.pid,
                img: st.image.display().to_string(),
                ip: &st.ip,
                log_err: st.log_err.display().to_string(),
                log_out: st.log_out.display().to_string(),
            })
            .collect(),
    };
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    listing.serialize(&mut ser)?;
    let text = String::from_utf8(buf)?;
    // These characters only occur inside string values here: the keys are fixed.
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        + "\n")
}

/// The default listing: `INSTANCE NAME`, `PID`, `IP`, `IMAGE`.
fn table(found: &[State]) -> String {
    let mut rows = vec![vec![
        "INSTANCE NAME".to_string(),
        "PID".into(),
        "IP".into(),
        "IMAGE".into(),
    ]];
    for st in found {
        rows.push(vec![
            st.name.clone(),
            st.pid.to_string(),
            st.ip.clone(),
            st.image.display().to_string(),
        ]);
    }
    tabwrite(&rows)
}

/// `--logs`: `INSTANCE NAME`, `PID`, `LOGS`, the stderr log on the instance's line and the
/// stdout log under it.
fn logs_table(found: &[State]) -> String {
    let mut rows = vec![vec![
        "INSTANCE NAME".to_string(),
        "PID".into(),
        "LOGS".into(),
    ]];
    for st in found {
        rows.push(vec![
            st.name.clone(),
            st.pid.to_string(),
            st.log_err.display().to_string(),
        ]);
        rows.push(vec![
            String::new(),
            String::new(),
            st.log_out.display().to_string(),
        ]);
    }
    tabwrite(&rows)
}

/// Rows of cells aligned as Go's `tabwriter.NewWriter(w, 0, 8, 4, ' ', 0)` aligns
/// tab-separated lines: every cell but the last of a line is padded with spaces to the widest
/// cell of its column plus 4; the last cell is written as it is. (All rows here have as many
/// cells, so each column is one tabwriter block.)
fn tabwrite(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns.saturating_sub(1))
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
                + 4
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(i).filter(|_| i + 1 < row.len()) {
                out.push_str(&" ".repeat(w - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn st(name: &str, pid: i32, ip: &str, image: &str) -> State {
        State {
            name: name.into(),
            pid,
            image: image.into(),
            uid: 1000,
            started: 0,
            start_ticks: None,
            ip: ip.into(),
            log_out: PathBuf::from(format!("/home/u/.apptainer/instances/logs/n1/u/{name}.out")),
            log_err: PathBuf::from(format!("/home/u/.apptainer/instances/logs/n1/u/{name}.err")),
        }
    }

    fn two() -> Vec<State> {
        vec![
            st("web", 4242, "", "/data/images/nginx.sif"),
            st("database-1", 77, "10.22.0.5", "/data/images/pg.sif"),
        ]
    }

    // Expected texts are what Apptainer 1.5.3's PrintInstanceList writes for the same records.
    #[test]
    fn the_table_has_apptainers_columns_and_alignment() {
        assert_eq!(
            table(&two()),
            "INSTANCE NAME    PID     IP           IMAGE\n\
             web              4242                 /data/images/nginx.sif\n\
             database-1       77      10.22.0.5    /data/images/pg.sif\n"
        );
        assert_eq!(table(&[]), "INSTANCE NAME    PID    IP    IMAGE\n");
    }

    #[test]
    fn the_logs_table_has_the_err_log_then_the_out_log_under_it() {
        assert_eq!(
            logs_table(&two()[..1]),
            "INSTANCE NAME    PID     LOGS\n\
             web              4242    /home/u/.apptainer/instances/logs/n1/u/web.err\n\
             \x20                        /home/u/.apptainer/instances/logs/n1/u/web.out\n"
        );
    }

    #[test]
    fn json_has_apptainers_keys_in_order_and_tab_indent() {
        assert_eq!(
            json(&two()[..1]).unwrap(),
            "{\n\t\"instances\": [\n\t\t{\n\
             \t\t\t\"instance\": \"web\",\n\
             \t\t\t\"pid\": 4242,\n\
             \t\t\t\"img\": \"/data/images/nginx.sif\",\n\
             \t\t\t\"ip\": \"\",\n\
             \t\t\t\"logErrPath\": \"/home/u/.apptainer/instances/logs/n1/u/web.err\",\n\
             \t\t\t\"logOutPath\": \"/home/u/.apptainer/instances/logs/n1/u/web.out\"\n\
             \t\t}\n\t]\n}\n"
        );
        assert_eq!(json(&[]).unwrap(), "{\n\t\"instances\": []\n}\n");
    }

    #[test]
    fn json_escapes_html_characters_as_go_does() {
        let out = json(&[st("x", 1, "", "/a<b>&c.sif")]).unwrap();
        assert!(
            out.contains("\"img\": \"/a\\u003cb\\u003e\\u0026c.sif\""),
            "{out}"
        );
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["instances"][0]["img"], "/a<b>&c.sif");
    }
}

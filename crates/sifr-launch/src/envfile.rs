//! `--env-file FILE`: a file of shell assignments whose variables are put into the container
//! with the weight of `APPTAINERENV_*` (they replace an `APPTAINERENV_` of the same name, and
//! `--env` replaces them), as Apptainer does.
//!
//! Apptainer evaluates the file on the host with its embedded shell interpreter, reading the
//! host environment plus `APPTAINER_IMAGE`; commands are not executed. sifr evaluates it with the
//! native evaluator of [`crate::envscript`] (assignments, `export`, `unset`, quoting, `$VAR` and
//! `${VAR:-x}` forms); a line needing a real shell is an error naming `FILE:LINE`, never a
//! silent skip. Pure: the caller reads the file; nothing here runs across a namespace change.

use std::path::{Path, PathBuf};

use crate::vars::Vars;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid environment file `{}:{line}`: {what} is not supported", path.display())]
pub struct EnvFileError {
    pub path: PathBuf,
    pub line: usize,
    pub what: String,
}

impl EnvFileError {
    pub fn hint(&self) -> String {
        "an environment file may only hold `NAME=value` and `export NAME=value` lines, `unset NAME` and comments".into()
    }
}

/// The variables `text` (the content of `path`) assigns, evaluated against the host
/// environment `host` and `APPTAINER_IMAGE=image`.
pub fn evaluate(
    path: &Path,
    text: &str,
    host: &[(String, String)],
    image: &Path,
) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut visible = Vars(host.to_vec());
    visible.set("APPTAINER_IMAGE", &image.display().to_string());
    crate::envscript::eval_assignments(text, &visible)
        .map(|v| v.0)
        .map_err(|u| EnvFileError {
            path: path.into(),
            line: u.line,
            what: u.what,
        })
}

/// Several files in order: a variable of a later file replaces an earlier one.
pub fn merge(files: Vec<Vec<(String, String)>>) -> Vec<(String, String)> {
    let mut out = Vars::default();
    for (k, v) in files.into_iter().flatten() {
        out.set(&k, &v);
    }
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Vec<(String, String)> {
        vec![("USER".into(), "alice".into())]
    }

    #[test]
    fn assignments_see_the_host_and_earlier_lines() {
        let text = "# comment\nA=1\nexport B=\"$A-$USER\"\nC='${nope}'\nD=${MISSING:-dflt}\n";
        let got = evaluate(Path::new("f.env"), text, &host(), Path::new("/i.sif")).unwrap();
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "1-alice"),
            ("C", "${nope}"),
            ("D", "dflt"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn host_variables_are_not_part_of_the_result() {
        let got = evaluate(Path::new("f"), "X=$USER\n", &host(), Path::new("/i")).unwrap();
        assert_eq!(got, vec![("X".to_string(), "alice".to_string())]);
    }

    #[test]
    fn a_line_needing_a_shell_names_file_and_line() {
        let e = evaluate(
            Path::new("/job/vars.env"),
            "A=1\n\nB=$(hostname)\n",
            &host(),
            Path::new("/i"),
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.to_string()
                .starts_with("invalid environment file `/job/vars.env:3`: "),
            "{e}"
        );
    }

    #[test]
    fn later_files_win() {
        let a = vec![("X".to_string(), "1".to_string()), ("Y".into(), "a".into())];
        let b = vec![("X".to_string(), "2".to_string())];
        assert_eq!(
            merge(vec![a, b]),
            vec![("X".to_string(), "2".to_string()), ("Y".into(), "a".into())]
        );
    }
}

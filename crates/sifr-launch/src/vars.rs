//! An ordered list of environment variables ([`Vars`]) and the default `PATH`: what the
//! environment's builders ([`crate::env`], [`crate::envscript`], [`crate::envfile`],
//! [`crate::libpath`]) pass between them.

/// `PATH` when nothing sets one (Apptainer's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An ordered variable list with set/get/remove, used while the environment is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(pub Vec<(String, String)>);

impl Vars {
    /// Variables from literal pairs (tests).
    #[cfg(test)]
    pub(crate) fn of(p: &[(&str, &str)]) -> Vars {
        Vars(
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    pub fn set(&mut self, k: &str, v: &str) {
        match self.0.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.to_string(),
            None => self.0.push((k.to_string(), v.to_string())),
        }
    }
    pub fn remove(&mut self, k: &str) {
        self.0.retain(|(n, _)| n != k);
    }
}

/// Apptainer's `fixpath`: the directories of [`DEFAULT_PATH`] that `PATH` lacks are appended
/// (after the legacy `/environment` of images older than Singularity 2.3).
pub fn fix_path(vars: &mut Vars) {
    let mut path: Vec<String> = vars
        .get("PATH")
        .map(|p| p.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    for d in DEFAULT_PATH.split(':') {
        if !path.iter().any(|p| p == d) {
            path.push(d.to_string());
        }
    }
    vars.set("PATH", &path.join(":"));
}

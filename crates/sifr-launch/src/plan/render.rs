//! [`LaunchPlan`]'s queries and its line-oriented rendering (snapshots, `--debug` logs).

use super::*;

impl LaunchPlan {
    /// Whether the image may be mounted by the kernel (loop device): only without a user
    /// namespace, since a user namespace's root cannot mount squashfs.
    pub fn kernel_mounts(&self) -> bool {
        self.ids == IdMap::Host
    }

    /// A stable, line-oriented rendering for snapshots and `--debug` logs.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "image {}", self.image.display());
        let _ = writeln!(
            s,
            "namespaces {}{}",
            self.namespaces.describe(),
            match &self.ids {
                IdMap::Host => String::new(),
                IdMap::Own => format!(
                    " (uid {0}->{0}, gid {1}->{1})",
                    self.identity.uid, self.identity.gid
                ),
                IdMap::Fakeroot { .. } =>
                    " (fakeroot: root->caller, subordinate ids if any)".into(),
            }
        );
        if let Some(h) = &self.hostname {
            let _ = writeln!(s, "hostname {h}");
        }
        match &self.net.mode {
            crate::net::Mode::Host => {}
            crate::net::Mode::Loopback => {
                let _ = writeln!(s, "network none (loopback only)");
            }
            crate::net::Mode::Join(p) => {
                let _ = writeln!(s, "network joined {}", p.display());
            }
        }
        if !self.net.dns.is_empty() {
            let ips: Vec<String> = self.net.dns.iter().map(ToString::to_string).collect();
            let _ = writeln!(s, "dns {}", ips.join(","));
        }
        if let Some(idle) = self.share {
            let _ = writeln!(
                s,
                "shared with the node's launches (idle {}s)",
                idle.as_secs_f64()
            );
        }
        let root = match (self.overlay.as_slice(), self.writable, self.writable_tmpfs) {
            ([_, ..], _, _) => {
                let layers: Vec<String> = self
                    .overlay
                    .iter()
                    .map(|o| format!("{}{}", o.path.display(), if o.ro { ":ro" } else { "" }))
                    .collect();
                format!(
                    "overlay {}{}",
                    layers.join(","),
                    if self.writable_tmpfs {
                        " + writable-tmpfs"
                    } else {
                        ""
                    }
                )
            }
            ([], true, _) => "writable".into(),
            ([], false, true) => "writable-tmpfs".into(),
            ([], false, false) => "read-only".into(),
        };
        let _ = writeln!(s, "root {root}");
        if self.session_mib != DEFAULT_SESSION_MIB {
            let _ = writeln!(s, "session {} MiB", self.session_mib);
        }
        for m in &self.mounts {
            let src = match &m.source {
                Source::Host(p) => p.display().to_string(),
                Source::Scratch => "<scratch>".into(),
                Source::Passwd => "<passwd>".into(),
                Source::Group => "<group>".into(),
                Source::Devpts => "<devpts>".into(),
                Source::Proc => "<proc>".into(),
                Source::Hostname => "<hostname>".into(),
                Source::Text { name, .. } => format!("<{name}>"),
                Source::Fuse(i) => format!("<fuse {i}>"),
            };
            let mut flags = vec![if m.readonly { "ro" } else { "rw" }];
            if m.nosuid {
                flags.push("nosuid");
            }
            if m.nodev {
                flags.push("nodev");
            }
            if m.required {
                flags.push("required");
            }
            let create;
            if let Some(mode) = m.create {
                create = format!("create={mode:o}");
                flags.push(&create);
            }
            let _ = writeln!(
                s,
                "mount {:?} {} -> {} {}",
                m.tag,
                src,
                m.dst.display(),
                flags.join(",")
            );
        }
        for (i, f) in self.fuse.specs.iter().enumerate() {
            let _ = writeln!(
                s,
                "fuse {i} {:?}{}: {}",
                f.side,
                if f.daemon { " daemon" } else { "" },
                crate::fusemount::argv(f).join(" ")
            );
        }
        let _ = writeln!(
            s,
            "cwd {}{}",
            self.cwd.path.display(),
            if self.cwd.explicit { " (explicit)" } else { "" }
        );
        let _ = writeln!(s, "action {:?}", self.action);
        if let Some(app) = &self.app {
            let _ = writeln!(s, "app {}", app.name());
        }
        s.push_str(&self.env.render());
        s
    }
}

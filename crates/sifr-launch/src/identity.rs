//! The generated `/etc/passwd` and `/etc/group` (Apptainer's `passwd.go`/`group.go`): the
//! image's own file with the caller's entry replaced or appended.
//!
//! Pure text processing: the caller reads the image's file (through the image root fd) and
//! writes the result into the session tmpfs. No namespace work.

use crate::plan::types::Identity;

/// The image's passwd text with the caller's line (`name:x:uid:gid:gecos:home:shell`).
/// Name and gecos come from the host (for uid 0 the image's name is kept); the shell from the
/// image's entry if there is one, else from the host.
pub fn passwd(image: &str, id: &Identity) -> String {
    let mut out = String::new();
    let mut image_entry: Option<Vec<&str>> = None;
    for line in image.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 7 && f[2].parse::<u32>().ok() == Some(id.uid) {
            image_entry.get_or_insert(f);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let host = id.user.as_ref();
    let name = match (&image_entry, host) {
        (Some(e), _) if id.uid == 0 => e[0].to_string(),
        (_, Some(u)) => u.name.clone(),
        (Some(e), None) => e[0].to_string(),
        (None, None) => format!("uid{}", id.uid),
    };
    let gecos = host.map(|u| u.gecos.clone()).unwrap_or_default();
    let shell = match (&image_entry, host) {
        (Some(e), _) if !e[6].is_empty() => e[6].to_string(),
        (_, Some(u)) if !u.shell.is_empty() => u.shell.clone(),
        _ => "/bin/sh".into(),
    };
    out.push_str(&format!(
        "{name}:x:{}:{}:{gecos}:{}:{shell}\n",
        id.uid,
        id.gid,
        id.home_dst.display()
    ));
    out
}

/// The image's group text plus the caller's host groups (primary first), skipping gids the
/// image already defines; the caller's user name is added to the member list of those.
pub fn group(image: &str, id: &Identity) -> String {
    let user = id.user.as_ref().map(|u| u.name.as_str());
    let mut wanted: Vec<(u32, String)> = Vec::new();
    if let Some(n) = &id.group_name {
        wanted.push((id.gid, n.clone()));
    }
    for (g, n) in &id.groups {
        if !wanted.iter().any(|(w, _)| w == g) {
            wanted.push((*g, n.clone()));
        }
    }
    let mut out = String::new();
    let mut present = Vec::new();
    for line in image.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let gid = f.get(2).and_then(|g| g.parse::<u32>().ok());
        match (gid, user) {
            (Some(g), Some(u)) if f.len() == 4 && wanted.iter().any(|(w, _)| *w == g) => {
                present.push(g);
                let members: Vec<&str> = f[3].split(',').filter(|m| !m.is_empty()).collect();
                if members.contains(&u) || g == id.gid {
                    out.push_str(line);
                } else if members.is_empty() {
                    out.push_str(&format!("{}:{}:{}:{u}", f[0], f[1], f[2]));
                } else {
                    out.push_str(&format!("{line},{u}"));
                }
            }
            (Some(g), _) => {
                present.push(g);
                out.push_str(line);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    for (g, n) in wanted {
        if present.contains(&g) {
            continue;
        }
        let members = if g == id.gid { "" } else { user.unwrap_or("") };
        out.push_str(&format!("{n}:x:{g}:{members}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::types::UserInfo;

    fn id(uid: u32) -> Identity {
        Identity {
            uid,
            gid: 1000,
            user: Some(UserInfo {
                name: "alice".into(),
                gecos: "Alice".into(),
                home: "/home/alice".into(),
                shell: "/bin/zsh".into(),
            }),
            home_dst: "/home/alice".into(),
            group_name: Some("alice".into()),
            groups: vec![
                (1000, "alice".into()),
                (27, "sudo".into()),
                (5000, "proj".into()),
            ],
        }
    }

    #[test]
    fn caller_line_is_appended_with_host_name_and_shell() {
        let p = passwd("root:x:0:0:root:/root:/bin/sh\n", &id(1000));
        assert_eq!(
            p,
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/zsh\n"
        );
    }

    #[test]
    fn image_entry_for_the_uid_is_replaced_keeping_its_shell() {
        let p = passwd(
            "root:x:0:0:root:/root:/bin/sh\nubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n",
            &id(1000),
        );
        assert_eq!(
            p,
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
        );
    }

    #[test]
    fn groups_are_added_once_and_existing_ones_gain_the_member() {
        let g = group("root:x:0:\nsudo:x:27:\n", &id(1000));
        assert_eq!(
            g,
            "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\nproj:x:5000:alice\n"
        );
    }
}

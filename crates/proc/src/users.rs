//! Sandbox users and groups by name, from `/etc/passwd` and `/etc/group`.
//!
//! Read directly (no NSS): a sandbox account is a local system account.

use std::path::Path;

/// The uid and primary gid of a local user, by name or numeric id.
pub fn lookup_user(name: &str) -> Option<(u32, u32)> {
    lookup_user_in(Path::new("/etc/passwd"), name)
}

/// The gid of a local group, by name or numeric id.
pub fn lookup_group(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse() {
        return Some(gid);
    }
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

fn lookup_user_in(passwd: &Path, name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(passwd).ok()?;
    let by_id: Option<u32> = name.parse().ok();
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let (uid, gid) = (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        (f[0] == name || by_id == Some(uid)).then_some((uid, gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_name_and_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nsandbox:x:1500:1501::/home/sandbox:/bin/false\n",
        )
        .unwrap();
        assert_eq!(lookup_user_in(&passwd, "sandbox"), Some((1500, 1501)));
        assert_eq!(lookup_user_in(&passwd, "1500"), Some((1500, 1501)));
        assert_eq!(lookup_user_in(&passwd, "nobody-here"), None);
        assert_eq!(lookup_user("root"), Some((0, 0)));
        assert_eq!(lookup_group("0"), Some(0));
    }
}

//! What the warm tests share (`mod common;` in each of them).

use std::sync::Arc;

use codejail::{JailConfig, Warm, WarmOptions};

/// A jail whose runs go to a private parent, and a pool of it; `None`
/// (said) where this machine cannot have a warm pool.
pub fn pool(name: &str, options: WarmOptions) -> Option<(tempfile::TempDir, Warm)> {
    let parent = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = JailConfig::new("/usr/bin/python3");
    config.jail_parent = Some(parent.path().to_owned());
    let jail = Arc::new(codejail::Jail::new(name, config).unwrap());
    match jail.warm_with(options) {
        Ok(warm) => Some((parent, warm)),
        Err(e) => {
            codejail_tests::require("landlock_scopes", Some(&e.to_string()));
            None
        }
    }
}

//! The request's own jail parent, named for `codejail gc`.

use std::path::{Path, PathBuf};

use super::{Refusal, setup};

/// The request's own jail parent: `codejail-<pid>.<start>-api`, the
/// naming `codejail gc` reads, so that a killed command's is removed.
pub(super) struct Parent {
    pub(super) path: PathBuf,
}

impl Parent {
    pub(super) fn create(under: Option<&Path>) -> Result<Parent, Refusal> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let base = under.map_or_else(std::env::temp_dir, Path::to_owned);
        let path = base.join(format!("codejail-{}-api", codejail::owner::stamp()));
        let made = std::fs::DirBuilder::new().mode(0o711).create(&path);
        made.and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711)))
            .map_err(|e| {
                setup(format!(
                    "cannot create a jail parent in {}: {e}",
                    base.display()
                ))
            })?;
        Ok(Parent { path })
    }

    pub(super) fn remove(&self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

//! `cargo xtask man`: the man pages, from the clap definitions of the
//! `codejail` command (`codejail_cli::command`), one per subcommand as
//! git's (`codejail.1`, `codejail-run.1`, ...). The pages are committed in
//! `crates/cli/man/` and shipped by the .deb; a test fails when they are
//! stale.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the pages are committed.
pub(crate) fn dir() -> PathBuf {
    crate::root().join("crates/cli/man")
}

/// Every page by file name.
pub(crate) fn render() -> Result<BTreeMap<String, Vec<u8>>, String> {
    fn walk(
        cmd: clap::Command,
        source: &str,
        out: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<(), String> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, source, out)?;
        }
        let man = clap_mangen::Man::new(cmd)
            .source(source)
            .manual("codejail manual");
        let mut page = Vec::new();
        man.render(&mut page)
            .map_err(|e| format!("render {}: {e}", man.get_filename()))?;
        out.insert(man.get_filename(), page);
        Ok(())
    }
    let mut cmd = codejail_cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("codejail {}", cmd.get_version().unwrap_or_default());
    let mut pages = BTreeMap::new();
    walk(cmd, &source, &mut pages)?;
    Ok(pages)
}

/// The committed pages by file name (every `*.1` in [`dir`]).
fn committed() -> Result<BTreeMap<String, Vec<u8>>, String> {
    let dir = dir();
    let mut pages = BTreeMap::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") {
            let bytes = std::fs::read(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            pages.insert(name, bytes);
        }
    }
    Ok(pages)
}

/// Writes the pages (and removes those of subcommands that are gone).
pub(crate) fn generate() -> Result<(), String> {
    let dir = dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pages = render()?;
    for name in committed()?.keys().filter(|n| !pages.contains_key(*n)) {
        let path = dir.join(name);
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("removed {}", path.display());
    }
    for (name, page) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, page).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The committed pages are what the clap definitions give today.
    #[test]
    fn man_pages_are_current() {
        let fresh = super::render().unwrap();
        let committed = super::committed().unwrap();
        let names =
            |m: &std::collections::BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&committed),
            names(&fresh),
            "the man pages in crates/cli/man are stale (pages added or gone); run `cargo xtask man` and commit the result"
        );
        for (name, page) in &fresh {
            assert!(
                committed[name] == *page,
                "crates/cli/man/{name} is stale (the clap definitions changed); run `cargo xtask man` and commit the result"
            );
        }
    }
}

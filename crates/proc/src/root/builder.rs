//! The steps that build the new root, and what each of its paths is.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

use crate::child::RootOp;

use super::paths::{conflict, cstring, host, relative};
use super::{Node, RootError};

/// The steps, and what each path of the new root is.
#[derive(Default)]
pub(super) struct Builder {
    /// By path relative to the new root.
    pub(super) nodes: BTreeMap<PathBuf, Node>,
    pub(super) ops: Vec<RootOp>,
    pub(super) sources: Vec<CString>,
}

impl Builder {
    /// Creates the missing directories above `path`.
    pub(super) fn parents(&mut self, path: &Path) -> Result<(), RootError> {
        let rel = relative(path);
        let mut dir = PathBuf::new();
        let components: Vec<_> = rel.components().collect();
        for c in components.iter().take(components.len().saturating_sub(1)) {
            dir.push(c);
            match self.nodes.get(&dir) {
                Some(Node::Dir | Node::Bind) => {}
                Some(_) => return Err(conflict(path)),
                None => {
                    self.ops.push(RootOp::Dir {
                        path: cstring(&dir)?,
                        mode: 0o755,
                    });
                    self.nodes.insert(dir.clone(), Node::Dir);
                }
            }
        }
        Ok(())
    }

    /// A directory or empty file at `path`, unless something is there.
    pub(super) fn placeholder(
        &mut self,
        path: &Path,
        node: Node,
        mode: u32,
    ) -> Result<(), RootError> {
        let rel = relative(path);
        if self.nodes.contains_key(&rel) {
            return Ok(());
        }
        let c = cstring(&rel)?;
        self.ops.push(match node {
            Node::Dir => RootOp::Dir { path: c, mode },
            Node::Whiteout => RootOp::Whiteout { path: c },
            _ => RootOp::File { path: c },
        });
        self.nodes.insert(rel, node);
        Ok(())
    }

    pub(super) fn link(&mut self, path: &Path, target: &Path) -> Result<(), RootError> {
        let rel = relative(path);
        if self.nodes.contains_key(&rel) {
            return Ok(());
        }
        self.ops.push(RootOp::Link {
            target: cstring(target)?,
            path: cstring(&rel)?,
        });
        self.nodes.insert(rel, Node::Link);
        Ok(())
    }

    pub(super) fn bind(
        &mut self,
        path: &Path,
        remount: Option<MountFlags>,
    ) -> Result<(), RootError> {
        let rel = relative(path);
        self.ops.push(RootOp::Bind {
            source: self.sources.len(),
            path: cstring(&rel)?,
            remount,
        });
        self.sources.push(cstring(path)?);
        self.nodes.insert(rel, Node::Bind);
        Ok(())
    }

    /// The names of the host directory `dir` that the root lacks:
    /// directories (mode `dir_mode`, empty), the same links, empty files.
    pub(super) fn mirror(&mut self, dir: &Path, dir_mode: u32) -> Result<(), RootError> {
        let entries = std::fs::read_dir(dir).map_err(host(dir))?;
        for entry in entries {
            let entry = entry.map_err(host(dir))?;
            let path = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(host(&path))?;
                self.link(&path, &target)?;
            } else if kind.is_dir() {
                self.placeholder(&path, Node::Dir, dir_mode)?;
            } else {
                self.placeholder(&path, Node::Whiteout, 0)?;
            }
        }
        Ok(())
    }
}

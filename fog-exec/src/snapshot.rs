//! Container checkpoints as bytes: a task's checkpoint directory packed into
//! a plain tar archive, so a container's checkpoint is stored, shipped and
//! restored exactly like a WASM task's.
//!
//! The handshake with the container: it writes its state under
//! `$FOG_CHECKPOINT_DIR`, then creates [`COMMIT_FILE`] there and leaves the
//! directory alone until that file disappears. The executor packs the
//! directory (without its control files: the commit, the executor's
//! `checkpoint.request` and `checkpoint.error`), persists the archive as the
//! task's next checkpoint and removes the commit file. Only regular files
//! and directories are packed; anything else (a symlink, a device, a fifo)
//! makes the checkpoint refused, as does an archive over the task's
//! [`Limits::checkpoint_bytes`](crate::Limits::checkpoint_bytes).
//!
//! Restoring is the reverse and trusts nothing: the archive may come from
//! another node. Entries must be regular files or directories with plain
//! relative paths; anything else refuses the whole archive before a byte is
//! written.

use std::io::{Cursor, Read};
use std::path::{Component, Path, PathBuf};

use crate::ExecError;
use crate::image::fixed_header;

/// The file a container creates to commit a checkpoint.
pub(crate) const COMMIT_FILE: &str = "checkpoint.commit";
/// The file the executor creates to ask a container for a checkpoint.
pub(crate) const REQUEST_FILE: &str = "checkpoint.request";
/// Where the executor tells a container why its last commit was refused.
pub(crate) const ERROR_FILE: &str = "checkpoint.error";
/// Most entries one checkpoint archive may hold.
const MAX_ENTRIES: usize = 10_000;

fn err(message: impl Into<String>) -> ExecError {
    ExecError::Checkpoint(message.into())
}

/// Packs `dir` (recursively, in name order, with fixed metadata so equal
/// trees give equal bytes) into a tar archive of at most `max_bytes`.
pub(crate) fn pack(dir: &Path, max_bytes: usize) -> Result<Vec<u8>, ExecError> {
    let mut files = Vec::new();
    collect(dir, Path::new(""), &mut files)?;
    let mut builder = tar::Builder::new(Vec::new());
    // The archive's size as it grows: a 512-byte header per entry, file
    // bytes padded to 512, and 1024 bytes of end marker.
    let mut size = 1024usize;
    for (rel, is_dir) in files {
        let full = dir.join(&rel);
        let bytes = if is_dir {
            Vec::new()
        } else {
            std::fs::read(&full).map_err(|e| ExecError::io(&full, &e))?
        };
        size += 512 + bytes.len().div_ceil(512) * 512;
        if size > max_bytes {
            return Err(err(format!(
                "the checkpoint directory holds more than the task's limit of {max_bytes} bytes"
            )));
        }
        let (kind, mode) = if is_dir {
            (tar::EntryType::Directory, 0o755)
        } else {
            (tar::EntryType::Regular, 0o644)
        };
        let mut header = fixed_header(kind, mode, bytes.len() as u64);
        builder
            .append_data(&mut header, &rel, bytes.as_slice())
            .map_err(|e| err(format!("packing {}: {e}", rel.display())))?;
    }
    builder
        .into_inner()
        .map_err(|e| err(format!("finishing the archive: {e}")))
}

/// Lists `dir/rel` depth first in name order, skipping the control files
/// at the top.
fn collect(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, bool)>) -> Result<(), ExecError> {
    let here = root.join(rel);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&here).map_err(|e| ExecError::io(&here, &e))? {
        let entry = entry.map_err(|e| ExecError::io(&here, &e))?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        if rel.as_os_str().is_empty()
            && [COMMIT_FILE, REQUEST_FILE, ERROR_FILE]
                .iter()
                .any(|c| name == *c)
        {
            continue;
        }
        let child = rel.join(&name);
        let full = root.join(&child);
        let kind = std::fs::symlink_metadata(&full)
            .map_err(|e| ExecError::io(&full, &e))?
            .file_type();
        if out.len() >= MAX_ENTRIES {
            return Err(err(format!(
                "the checkpoint directory holds more than {MAX_ENTRIES} entries"
            )));
        }
        if kind.is_dir() {
            out.push((child.clone(), true));
            collect(root, &child, out)?;
        } else if kind.is_file() {
            out.push((child, false));
        } else {
            return Err(err(format!(
                "{} is neither a regular file nor a directory",
                child.display()
            )));
        }
    }
    Ok(())
}

/// One checked entry of an archive.
enum Item {
    Dir(PathBuf),
    File(PathBuf, Vec<u8>),
}

/// Reads and checks every entry of `data` without touching the disk.
fn read_all(data: &[u8]) -> Result<Vec<Item>, ExecError> {
    let mut archive = tar::Archive::new(Cursor::new(data));
    let mut items = Vec::new();
    for entry in archive
        .entries()
        .map_err(|e| err(format!("not a tar archive: {e}")))?
    {
        let mut entry = entry.map_err(|e| err(format!("corrupt archive: {e}")))?;
        if items.len() >= MAX_ENTRIES {
            return Err(err(format!(
                "the archive holds more than {MAX_ENTRIES} entries"
            )));
        }
        let path = entry
            .path()
            .map_err(|e| err(format!("corrupt entry name: {e}")))?
            .into_owned();
        let plain = !path.as_os_str().is_empty()
            && path.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(err(format!(
                "entry {} is not a plain relative path",
                path.display()
            )));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => items.push(Item::Dir(path)),
            tar::EntryType::Regular => {
                // The archive is in memory: an entry cannot claim more
                // bytes than it holds.
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| err(format!("corrupt entry {}: {e}", path.display())))?;
                items.push(Item::File(path, bytes));
            }
            other => {
                return Err(err(format!(
                    "entry {} has type {other:?}; only files and directories are restored",
                    path.display()
                )));
            }
        }
    }
    Ok(items)
}

/// Checks that `data` is an archive [`unpack`] would restore.
pub(crate) fn validate(data: &[u8]) -> Result<(), ExecError> {
    read_all(data).map(|_| ())
}

/// Replaces the contents of `dir` with the archive `data`. The archive is
/// checked in full first: a bad one leaves `dir` as it was.
pub(crate) fn unpack(data: &[u8], dir: &Path) -> Result<(), ExecError> {
    let items = read_all(data)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| ExecError::io(dir, &e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| ExecError::io(dir, &e))?;
    for item in items {
        match item {
            Item::Dir(rel) => {
                let full = dir.join(rel);
                std::fs::create_dir_all(&full).map_err(|e| ExecError::io(&full, &e))?;
            }
            Item::File(rel, bytes) => {
                let full = dir.join(rel);
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| ExecError::io(parent, &e))?;
                }
                std::fs::write(&full, bytes).map_err(|e| ExecError::io(&full, &e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_directory_round_trips_without_its_control_files() {
        let src = tempfile::tempdir().expect("tempdir");
        std::fs::write(src.path().join("count"), b"3\n").expect("write");
        std::fs::create_dir_all(src.path().join("deep/er")).expect("mkdir");
        std::fs::write(src.path().join("deep/er/state"), vec![7u8; 1500]).expect("write");
        std::fs::create_dir(src.path().join("empty")).expect("mkdir");
        std::fs::write(src.path().join(COMMIT_FILE), b"").expect("write");
        std::fs::write(src.path().join(REQUEST_FILE), b"1").expect("write");
        let packed = pack(src.path(), 1 << 20).expect("pack");
        assert_eq!(packed, pack(src.path(), 1 << 20).expect("pack again"));
        let dst = tempfile::tempdir().expect("tempdir");
        std::fs::write(dst.path().join("stale"), b"old").expect("write");
        unpack(&packed, dst.path()).expect("unpack");
        assert_eq!(
            std::fs::read(dst.path().join("count")).expect("read"),
            b"3\n"
        );
        assert_eq!(
            std::fs::read(dst.path().join("deep/er/state")).expect("read"),
            vec![7u8; 1500]
        );
        assert!(dst.path().join("empty").is_dir());
        assert!(!dst.path().join("stale").exists());
        assert!(!dst.path().join(COMMIT_FILE).exists());
        assert!(!dst.path().join(REQUEST_FILE).exists());
    }

    #[test]
    fn an_oversized_directory_or_a_symlink_is_refused() {
        let src = tempfile::tempdir().expect("tempdir");
        std::fs::write(src.path().join("big"), vec![0u8; 4096]).expect("write");
        assert!(matches!(
            pack(src.path(), 2048),
            Err(ExecError::Checkpoint(_))
        ));
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).expect("symlink");
        assert!(matches!(
            pack(src.path(), 1 << 20),
            Err(ExecError::Checkpoint(_))
        ));
    }

    #[test]
    fn escaping_paths_and_links_are_refused_and_change_nothing() {
        for (name, kind) in [
            ("../escape", tar::EntryType::Regular),
            ("/abs", tar::EntryType::Regular),
            ("a/../../b", tar::EntryType::Regular),
            ("link", tar::EntryType::Symlink),
            ("hard", tar::EntryType::Link),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(0);
            header.set_mode(0o644);
            // `set_path` refuses `..`; write the raw name as a hostile
            // archive would.
            let raw = &mut header.as_old_mut().name;
            raw.fill(0);
            raw[..name.len()].copy_from_slice(name.as_bytes());
            if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
                header.set_link_name("/etc/passwd").expect("link name");
            }
            header.set_cksum();
            let mut bytes = header.as_bytes().to_vec();
            bytes.extend_from_slice(&[0u8; 1024]);
            let dst = tempfile::tempdir().expect("tempdir");
            std::fs::write(dst.path().join("keep"), b"x").expect("write");
            assert!(
                matches!(unpack(&bytes, dst.path()), Err(ExecError::Checkpoint(_))),
                "{name} accepted"
            );
            assert_eq!(std::fs::read(dst.path().join("keep")).expect("kept"), b"x");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = validate(&data);
        }
    }
}

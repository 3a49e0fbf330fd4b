//! Building a loadable image tarball (`docker save` format) from files, so
//! a container image can come from a local file with no registry.

use std::io::Write;

use sha2::{Digest, Sha256};

use crate::ExecError;

/// One entry of the image's single layer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LayerEntry {
    /// A regular file.
    File {
        /// Path inside the image, without a leading `/`.
        path: String,
        /// Contents.
        bytes: Vec<u8>,
        /// Unix mode bits.
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Path inside the image, without a leading `/`.
        path: String,
        /// Link target.
        target: String,
    },
    /// An empty directory.
    Dir {
        /// Path inside the image, without a leading `/`.
        path: String,
    },
}

fn io(e: &std::io::Error) -> ExecError {
    ExecError::InvalidSpec(format!("building image tarball: {e}"))
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// A tar header with fixed metadata (owner root, time 0), so equal
/// contents give equal archives.
pub(crate) fn fixed_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header
}

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) -> Result<(), ExecError> {
    let mut header = fixed_header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
    builder
        .append_data(&mut header, path, bytes)
        .map_err(|e| io(&e))
}

/// Builds a single-layer image tarball tagged `tag` (for example
/// `fog-busybox:latest`) whose default command is `cmd`.
pub fn build_image_tar(
    tag: &str,
    entries: &[LayerEntry],
    cmd: &[&str],
) -> Result<Vec<u8>, ExecError> {
    let mut layer = tar::Builder::new(Vec::new());
    for entry in entries {
        match entry {
            LayerEntry::File { path, bytes, mode } => {
                let mut header = fixed_header(tar::EntryType::Regular, *mode, bytes.len() as u64);
                layer
                    .append_data(&mut header, path, &bytes[..])
                    .map_err(|e| io(&e))?;
            }
            LayerEntry::Symlink { path, target } => {
                let mut header = fixed_header(tar::EntryType::Symlink, 0o777, 0);
                layer
                    .append_link(&mut header, path, target)
                    .map_err(|e| io(&e))?;
            }
            LayerEntry::Dir { path } => {
                let mut header = fixed_header(tar::EntryType::Directory, 0o755, 0);
                layer
                    .append_data(&mut header, path, std::io::empty())
                    .map_err(|e| io(&e))?;
            }
        }
    }
    let layer = layer.into_inner().map_err(|e| io(&e))?;
    let layer_hash = hex::encode(Sha256::digest(&layer));
    let config = serde_json::json!({
        "architecture": arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
            "Cmd": cmd,
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_hash}")] },
        "history": [{ "created_by": "fog-exec build_image_tar" }],
    });
    let config = serde_json::to_vec(&config).map_err(|e| ExecError::InvalidSpec(e.to_string()))?;
    let config_hash = hex::encode(Sha256::digest(&config));
    let manifest = serde_json::json!([{
        "Config": format!("{config_hash}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{layer_hash}/layer.tar")],
    }]);
    let manifest =
        serde_json::to_vec(&manifest).map_err(|e| ExecError::InvalidSpec(e.to_string()))?;
    let mut image = tar::Builder::new(Vec::new());
    append(&mut image, &format!("{config_hash}.json"), &config)?;
    append(&mut image, &format!("{layer_hash}/layer.tar"), &layer)?;
    append(&mut image, "manifest.json", &manifest)?;
    let mut out = image.into_inner().map_err(|e| io(&e))?;
    out.flush().map_err(|e| io(&e))?;
    Ok(out)
}

/// Applets linked next to busybox in [`busybox_image_tar`].
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "dd", "head", "tr", "true", "false", "ls", "wc", "env", "touch",
];

/// An image tarball holding a static busybox binary (`bin/busybox` plus
/// applet links and `/tmp`), default command `/bin/sh`.
pub fn busybox_image_tar(tag: &str, busybox: &[u8]) -> Result<Vec<u8>, ExecError> {
    let mut entries = vec![
        LayerEntry::Dir { path: "bin".into() },
        LayerEntry::Dir { path: "tmp".into() },
        LayerEntry::File {
            path: "bin/busybox".into(),
            bytes: busybox.to_vec(),
            mode: 0o755,
        },
    ];
    entries.extend(APPLETS.iter().map(|a| LayerEntry::Symlink {
        path: format!("bin/{a}"),
        target: "busybox".into(),
    }));
    build_image_tar(tag, &entries, &["/bin/sh"])
}

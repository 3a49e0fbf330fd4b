//! Architecture checks that need no build: the top-level layout and the rule
//! that layer crates never depend on each other.

use std::fmt;
use std::path::Path;

/// The layer crates. Each owns one layer and is independently publishable.
pub(crate) const LAYER_CRATES: &[&str] = &[
    "fog-mix",
    "fog-p2p",
    "fog-mesh",
    "fog-sched",
    "fog-exec",
    "fog-harvest",
    "fog-dao",
];

/// Folders of the crates that may depend on layer crates: they compose layers.
pub(crate) const COMPOSERS: &[&str] = &["fog-cli", "xtask", "benches"];

/// Package names of those crates (the `benches` folder holds `fog-benches`).
const COMPOSER_PACKAGES: &[&str] = &["fog-cli", "xtask", "fog-benches"];

/// Top-level entries besides dotfiles.
const ALLOWED_TOP_LEVEL: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "README.md",
    "ARCHITECTURE.md",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "clippy.toml",
    "target",
];

/// A dependency edge that breaks the layer rule.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    from: String,
    to: String,
    kind: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} ({} dependency)", self.from, self.to, self.kind)
    }
}

/// Every top-level entry must be a known crate folder, a known file or a dotfile.
pub(crate) fn check_layout(root: &Path) -> Result<(), String> {
    let entries =
        std::fs::read_dir(root).map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    let mut unexpected = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", root.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let known = name.starts_with('.')
            || ALLOWED_TOP_LEVEL.contains(&name.as_str())
            || LAYER_CRATES.contains(&name.as_str())
            || COMPOSERS.contains(&name.as_str());
        if !known {
            unexpected.push(name);
        }
    }
    unexpected.sort();
    if unexpected.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unexpected top-level entries {unexpected:?}: the top level holds only the workspace files, the seven layer crates, fog-cli, xtask and benches"
        ))
    }
}

/// Finds dependencies (normal, dev or build) from a layer crate to a layer
/// crate or to any other workspace member, from `cargo metadata --no-deps`.
///
/// Depending on another workspace member would be a back door around the rule
/// (a shared crate that itself depends on a layer), so a layer crate may use
/// external crates only.
pub(crate) fn layer_violations(metadata: &serde_json::Value) -> Result<Vec<Violation>, String> {
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata has no `packages` array")?;
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut violations = Vec::new();
    for package in packages {
        let Some(name) = package["name"].as_str() else {
            continue;
        };
        if !is_layer(name) {
            continue;
        }
        let dependencies = package["dependencies"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        for dependency in dependencies {
            let Some(target) = dependency["name"].as_str() else {
                continue;
            };
            if is_layer(target) || members.contains(&target) {
                violations.push(Violation {
                    from: name.to_owned(),
                    to: target.to_owned(),
                    kind: dependency["kind"].as_str().unwrap_or("normal").to_owned(),
                });
            }
        }
    }
    Ok(violations)
}

/// A layer crate is any `fog-*` package that is not a composer.
fn is_layer(name: &str) -> bool {
    name.starts_with("fog-") && !COMPOSER_PACKAGES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata(packages: serde_json::Value) -> serde_json::Value {
        let mut document = serde_json::Map::new();
        document.insert("packages".to_owned(), packages);
        document.into()
    }

    #[test]
    fn composers_may_depend_on_layers() {
        let m = metadata(json!([
            { "name": "fog-cli", "dependencies": [{ "name": "fog-mix", "kind": null }] },
            { "name": "fog-mix", "dependencies": [{ "name": "sphinx-packet", "kind": null }] },
        ]));
        assert_eq!(layer_violations(&m).unwrap(), vec![]);
    }

    #[test]
    fn the_benches_crate_may_depend_on_every_layer() {
        let m = metadata(json!([
            { "name": "fog-benches", "dependencies": [
                { "name": "fog-mix", "kind": null },
                { "name": "fog-dao", "kind": null },
            ] },
            { "name": "fog-mix", "dependencies": [] },
            { "name": "fog-dao", "dependencies": [] },
        ]));
        assert_eq!(layer_violations(&m).unwrap(), vec![]);
    }

    #[test]
    fn layer_to_layer_is_a_violation_of_any_kind() {
        let m = metadata(json!([
            { "name": "fog-mix", "dependencies": [{ "name": "fog-p2p", "kind": "dev" }] },
            { "name": "fog-p2p", "dependencies": [] },
        ]));
        let v = layer_violations(&m).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].to_string(), "fog-mix -> fog-p2p (dev dependency)");
    }

    #[test]
    fn layer_to_any_workspace_member_is_a_violation() {
        let m = metadata(json!([
            { "name": "fog-dao", "dependencies": [{ "name": "shared-types", "kind": null }] },
            { "name": "shared-types", "dependencies": [] },
        ]));
        assert_eq!(layer_violations(&m).unwrap().len(), 1);
    }

    #[test]
    fn unknown_fog_crates_count_as_layers() {
        let m = metadata(json!([
            { "name": "fog-new", "dependencies": [{ "name": "fog-mix", "kind": "build" }] },
        ]));
        assert_eq!(layer_violations(&m).unwrap().len(), 1);
    }
}

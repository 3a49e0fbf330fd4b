//! `cargo xtask`: fog's project automation (matklad's xtask pattern).
//!
//! ```text
//! cargo xtask ci              layout and layer checks, fmt --check, clippy -D warnings, tests
//! cargo xtask check-layers    only the architecture checks (fast, no build)
//! cargo xtask bench [--quick] [--save-baseline NAME] [--baseline NAME] [LAYER...]
//!                             every benchmark, references side by side, report
//!                             in target/fog-bench/ (see benches/README.md)
//! cargo xtask man [--out DIR] the manual pages (fog.1, fog-job.1, ...), by default
//!                             in target/man/
//! ```
//!
//! All take `--workspace-root DIR` to run against another workspace (the
//! tests use it on fixture workspaces). Cargo is called through `$CARGO`.

mod bench;
mod layers;
mod plot;
mod report;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The test command of README.md's quickstart; `ci` runs exactly this.
pub(crate) const TEST_COMMAND: &[&str] = &["test", "--workspace", "--all-features"];
const FMT_COMMAND: &[&str] = &["fmt", "--all", "--", "--check"];
const CLIPPY_COMMAND: &[&str] = &[
    "clippy",
    "--workspace",
    "--all-targets",
    "--all-features",
    "--",
    "-D",
    "warnings",
];

const USAGE: &str = "usage: cargo xtask <ci | check-layers | bench | man [--out DIR]> [--workspace-root DIR] (bench --help for its options)";

fn main() -> ExitCode {
    match run(env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut args = args.into_iter();
    let task = args.next().ok_or_else(|| USAGE.to_owned())?;
    if task == "bench" {
        return bench::run(default_root(), args.collect());
    }
    let mut root = default_root();
    let mut out = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workspace-root" => {
                root = PathBuf::from(args.next().ok_or("--workspace-root needs a directory")?);
            }
            "--out" if task == "man" => {
                out = Some(PathBuf::from(args.next().ok_or("--out needs a directory")?));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    match task.as_str() {
        "check-layers" => check_architecture(&root),
        "ci" => ci(&root),
        "man" => man(&root, out),
        "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n{USAGE}")),
    }
}

/// The workspace this xtask belongs to.
fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Variables `cargo run` sets for the program it runs (this xtask) that a
/// nested cargo must not inherit: build scripts that declare
/// `rerun-if-env-changed` on them (ring's does, for `CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, `CARGO_PKG_VERSION_*`, `OUT_DIR`) are fingerprinted
/// against cargo's own environment, so a nested build that sees xtask's
/// values re-runs them and recompiles everything above them (ring, then
/// libp2p, fog-p2p, fog-mesh, fog-cli, ...), although a build from a shell
/// just compiled the same tree.
const CARGO_RUN_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];

/// A `cargo` command with the environment of a plain shell: the variables
/// `cargo run` gave this process removed (see [`CARGO_RUN_VARS`]; every
/// `CARGO_PKG_*` too).
fn cargo_command() -> Command {
    let mut command = Command::new(cargo());
    for (key, _) in env::vars_os() {
        if let Some(k) = key.to_str()
            && (k.starts_with("CARGO_PKG_") || CARGO_RUN_VARS.contains(&k))
        {
            command.env_remove(&key);
        }
    }
    command
}

/// The whole gate, cheapest check first so a broken rule fails fast.
fn ci(root: &Path) -> Result<(), String> {
    check_architecture(root)?;
    for step in [FMT_COMMAND, CLIPPY_COMMAND, TEST_COMMAND] {
        run_cargo(root, step)?;
    }
    eprintln!("xtask: ci passed");
    Ok(())
}

/// The manual pages: the hidden `fog manpages DIR` renders them from the
/// command tree (fog-cli is a binary crate, so xtask cannot link it).
fn man(root: &Path, out: Option<PathBuf>) -> Result<(), String> {
    let out = out.unwrap_or_else(|| root.join("target").join("man"));
    // Cargo runs in `root`; a relative --out is meant from here.
    let out = if out.is_absolute() {
        out
    } else {
        env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?
            .join(out)
    };
    let out = out
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", out.display()))?
        .to_owned();
    run_cargo(
        root,
        &[
            "run",
            "--quiet",
            "--package",
            "fog-cli",
            "--",
            "manpages",
            &out,
        ],
    )
}

fn check_architecture(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    layers::check_layout(root)?;
    let metadata = cargo_metadata(root)?;
    let violations = layers::layer_violations(&metadata)?;
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
        return Err(format!(
            "layer crates must not depend on each other (only fog-cli, xtask and benches may):\n{}",
            list.join("\n")
        ));
    }
    eprintln!(
        "xtask: layout and layer boundaries ok ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cargo_metadata(root: &Path) -> Result<serde_json::Value, String> {
    let output = cargo_command()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed in {}:\n{}",
            root.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata gave bad JSON: {e}"))
}

fn run_cargo(root: &Path, args: &[&str]) -> Result<(), String> {
    eprintln!("xtask: $ cargo {}", args.join(" "));
    let started = Instant::now();
    let status = cargo_command()
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if status.success() {
        eprintln!("xtask: `cargo {}` ok ({seconds:.0}s)", args.join(" "));
        Ok(())
    } else {
        Err(format!(
            "`cargo {}` failed ({status}, {seconds:.0}s)",
            args.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test` gives this test what `cargo run` gives the xtask
    /// (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`): a nested cargo never sees
    /// them.
    #[test]
    fn nested_cargo_does_not_inherit_cargo_run_variables() {
        assert!(env::var_os("CARGO_PKG_NAME").is_some());
        let command = cargo_command();
        let removed: Vec<&std::ffi::OsStr> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key)
            .collect();
        for key in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_MANIFEST_DIR",
        ] {
            assert!(
                removed.contains(&std::ffi::OsStr::new(key)),
                "{key} is passed on"
            );
        }
        assert!(!removed.contains(&std::ffi::OsStr::new("PATH")));
    }

    /// README.md's quickstart must show the exact command `ci` runs.
    #[test]
    fn readme_shows_the_test_command() {
        let readme = std::fs::read_to_string(default_root().join("README.md")).expect("README.md");
        let command = format!("cargo {}", TEST_COMMAND.join(" "));
        assert!(
            readme.lines().any(|line| line.trim() == command),
            "README.md has no line `{command}`"
        );
    }

    /// `.ci/run` must go through `cargo xtask ci`, so it runs the same test command.
    #[test]
    fn ci_script_runs_xtask_ci() {
        let script = std::fs::read_to_string(default_root().join(".ci/run")).expect(".ci/run");
        assert!(script.lines().any(|line| {
            let line = line.trim_start();
            !line.starts_with('#') && !line.starts_with("echo") && line.contains("cargo xtask ci")
        }));
        assert!(script.contains("FOG_REQUIRE_DOCKER=1") && script.contains("FOG_REQUIRE_NETNS=1"));
    }
}

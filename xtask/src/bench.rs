//! `cargo xtask bench [--quick] [--save-baseline NAME] [--baseline NAME] [LAYER...]`:
//! every benchmark behind one command.
//!
//! 1. builds `fog` and the `fog-benches` bench targets in release, once;
//! 2. runs the criterion benches of each selected layer and reads criterion's
//!    `new/estimates.json` files;
//! 3. runs `fog bench <layer> --json` (exit 69 means the layer has not landed:
//!    it is listed as missing);
//! 4. runs the side-by-side references: pymoo for NSGA-II (from PyPI into a
//!    virtualenv under `target/fog-bench/venv`), `docker run --rm` (inside
//!    `fog bench exec`, when a daemon answers), plain `sphinx-packet` (a
//!    criterion bench next to fog-mix's);
//! 5. counts instructions per call of a few kernels under callgrind;
//! 6. writes `target/fog-bench/report.md`, `report.json` and plots.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use serde_json::Value;

use crate::report::{
    Better, Figure, LAYERS, LayerStatus, Part, Reference, Report, RunInfo, Source, Target,
    classify_key, figures_from_json, flatten,
};

const USAGE: &str = "usage: cargo xtask bench [--quick] [--save-baseline NAME] [--baseline NAME] [--no-reference] [--no-callgrind] [LAYER...]
  LAYER: mix p2p mesh sched exec harvest dao (default: all)
  --quick          short criterion measurements and smaller scenario runs (< 5 min on 2 cores, built)
  --save-baseline  keep this run's figures as target/fog-bench/baselines/NAME.json
  --baseline       compare every figure with target/fog-bench/baselines/NAME.json
  --no-reference   skip pymoo (no virtualenv, no download)
  --no-callgrind   skip the instruction counts";

/// `fog bench <layer>` exits with this when the layer has not landed.
const EXIT_UNAVAILABLE: i32 = 69;

/// Calls per instruction-count kernel (the setup is subtracted).
const CALLGRIND_CALLS: usize = 8;

/// Targets from each layer's issue, in the figure's unit (criterion figures
/// are nanoseconds per call, or per element for benches with an element
/// throughput).
const TARGETS: &[(&str, f64, &str)] = &[
    ("mix/process/fog-mix", 40_000.0, "issue 3: 25,000 packets/s"),
    ("mix/ratio", 0.9, "issue 3: pipeline ≥ 0.9 × cores × raw"),
    (
        "mix/added_latency_p99_us",
        1000.0,
        "issue 3: p99 ≤ 1 ms at half of pipeline_pps",
    ),
    (
        "p2p/lookup_success_ratio",
        1.0,
        "issue 4: 100% at N = 1,000",
    ),
    ("p2p/lookup_hops_median", 4.0, "issue 4: median ≤ 4"),
    ("p2p/gossip_delivery_ratio", 1.0, "issue 4: 100%"),
    (
        "p2p/duplicates_per_message",
        3.0,
        "issue 4: ≤ 3 per message",
    ),
    (
        "sched/nsga2/zdt1_generation/10",
        250_000.0,
        "issue 6: ≤ 0.25 ms per generation",
    ),
    ("sched/nsga2/zdt1/ms_per_generation", 0.25, "issue 6"),
    ("sched/place/placements_per_s", 10_000.0, "issue 6"),
    ("sched/place/decision_p99_ms", 1.0, "issue 6"),
    (
        "exec/wasm/instantiate_run_hello",
        50_000.0,
        "issue 7: start p50 ≤ 50 µs",
    ),
    ("exec/start_p50_us", 50.0, "issue 7"),
    ("exec/start_p99_us", 250.0, "issue 7"),
    ("exec/engine_tasks_per_s", 40_000.0, "issue 7"),
    ("exec/executor_tasks_per_s", 5_000.0, "issue 7"),
    (
        "dao/verify/batch/1024",
        40_000.0,
        "issue 9: 25,000 votes/s per core",
    ),
    ("dao/verify_batch_per_cpu_s", 25_000.0, "issue 9"),
    (
        "dao/verify_us_per_event",
        1.5,
        "issue 9: 1,000,000 events in 1.5 s",
    ),
    ("mesh/prophet_delivery_vs_epidemic", 0.9, "issue 5"),
    ("mesh/prophet_overhead_vs_epidemic", 0.5, "issue 5"),
    ("mesh/spray_overhead_vs_epidemic", 0.2, "issue 5"),
];

/// Instruction-count kernels of `fog-benches`' `instructions` target and
/// the layer each belongs to.
const KERNELS: &[(&str, &str)] = &[
    ("mix_process", "mix"),
    ("replay_insert", "mix"),
    ("vote_verify", "dao"),
    ("bundle_roundtrip", "mesh"),
    ("nsga2_generation", "sched"),
];

#[derive(Debug, Default)]
struct Options {
    quick: bool,
    layers: Vec<String>,
    save_baseline: Option<String>,
    baseline: Option<String>,
    reference: bool,
    callgrind: bool,
}

fn parse(args: Vec<String>, root: &mut PathBuf) -> Result<Option<Options>, String> {
    let mut o = Options {
        reference: true,
        callgrind: true,
        ..Options::default()
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--no-reference" => o.reference = false,
            "--no-callgrind" => o.callgrind = false,
            "--save-baseline" | "--baseline" => {
                let name = args.next().ok_or(format!("{arg} needs a name"))?;
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                    || name.starts_with('.')
                {
                    return Err(format!(
                        "baseline name `{name}`: use letters, digits, - _ ."
                    ));
                }
                if arg == "--baseline" {
                    o.baseline = Some(name);
                } else {
                    o.save_baseline = Some(name);
                }
            }
            "--workspace-root" => {
                *root = PathBuf::from(args.next().ok_or("--workspace-root needs a directory")?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            layer if LAYERS.contains(&layer) => {
                if !o.layers.iter().any(|l| l == layer) {
                    o.layers.push(layer.to_owned());
                }
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if o.layers.is_empty() {
        o.layers = LAYERS.iter().map(|l| (*l).to_owned()).collect();
    }
    // Keep the report's order whatever the command line's.
    o.layers
        .sort_by_key(|l| LAYERS.iter().position(|x| x == l).unwrap_or(usize::MAX));
    Ok(Some(o))
}

/// Entry point of `cargo xtask bench`.
pub(crate) fn run(default_root: PathBuf, args: Vec<String>) -> Result<(), String> {
    let mut root = default_root;
    let Some(options) = parse(args, &mut root)? else {
        return Ok(());
    };
    let started = Instant::now();
    let target_dir = target_dir(&root)?;
    let out = target_dir.join("fog-bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let baseline = match &options.baseline {
        Some(name) => Some(load_baseline(&out, name)?),
        None => None,
    };

    let mut info = RunInfo {
        started: utc_now(),
        quick: options.quick,
        commit: git_commit(&root),
        cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        load_before: load_average(),
        baseline: options.baseline.clone(),
        readme: readme_link(&root, &out),
        ..RunInfo::default()
    };
    let mut figures = Vec::new();

    let phase = Instant::now();
    let built = build(&root)?;
    info.phases
        .push(("build".into(), phase.elapsed().as_secs_f64()));

    let phase = Instant::now();
    let criterion_home = target_dir.join("criterion");
    let mut layers = Vec::new();
    for layer in &options.layers {
        let crate_exists = root
            .join(format!("fog-{layer}"))
            .join("Cargo.toml")
            .is_file();
        let mut status = LayerStatus::new(layer, crate_exists);
        status.criterion = match built.benches.get(layer.as_str()) {
            Some(exe) => match run_criterion(exe, &criterion_home, options.quick) {
                Ok(found) => {
                    let n = found.len();
                    figures.extend(found);
                    Part::Ran(n)
                }
                Err(e) => Part::Failed(e),
            },
            None if !crate_exists => Part::Missing(format!("crate fog-{layer} has not landed")),
            None => Part::Missing(format!("no criterion bench `benches/benches/{layer}.rs`")),
        };
        layers.push(status);
    }
    info.phases
        .push(("criterion".into(), phase.elapsed().as_secs_f64()));

    let phase = Instant::now();
    for status in &mut layers {
        status.scenario = match run_scenario(&built.fog, &status.layer, options.quick) {
            Ok(found) => {
                let n = found.len();
                figures.extend(found);
                Part::Ran(n)
            }
            Err(part) => part,
        };
    }
    info.phases
        .push(("fog bench".into(), phase.elapsed().as_secs_f64()));

    let phase = Instant::now();
    for status in &mut layers {
        status.reference = match status.layer.as_str() {
            "mix" => Some(
                if figures.iter().any(|f| f.id == "mix/process/sphinx-packet") {
                    Part::Ran(1)
                } else {
                    Part::Missing("plain sphinx-packet bench did not run".into())
                },
            ),
            "exec" => Some(
                match figures
                    .iter()
                    .find(|f| f.id == "exec/docker_run_ms_per_container")
                {
                    Some(_) => Part::Ran(1),
                    None if matches!(status.scenario, Part::Ran(_)) => Part::Skipped(
                        "no Docker daemon answered (or no /bin/busybox for the local image)".into(),
                    ),
                    None => Part::Missing("`fog bench exec` did not run".into()),
                },
            ),
            "sched" if !options.reference => Some(Part::Skipped("--no-reference".into())),
            "sched" => Some(
                match pymoo(&root, &out, &built.fog, options.quick, &mut info) {
                    Ok(found) => {
                        let n = found.len();
                        figures.extend(found);
                        Part::Ran(n)
                    }
                    Err(e) => Part::Failed(e),
                },
            ),
            _ => None,
        };
    }
    info.phases
        .push(("references".into(), phase.elapsed().as_secs_f64()));

    let phase = Instant::now();
    if !options.callgrind {
        info.notes
            .push("instruction counts skipped (--no-callgrind)".into());
    } else if let Some(exe) = &built.instructions {
        match callgrind(exe, &out, &options.layers) {
            Ok((found, notes)) => {
                figures.extend(found);
                info.notes.extend(notes);
            }
            Err(e) => info
                .notes
                .push(format!("instruction counts not measured: {e}")),
        }
    } else {
        info.notes
            .push("instruction counts not measured: no `instructions` bench target".into());
    }
    info.phases
        .push(("callgrind".into(), phase.elapsed().as_secs_f64()));

    derive(&mut figures);
    attach_targets_and_references(&mut figures);
    let mut report = Report {
        info,
        layers,
        figures,
    };
    if let Some(base) = &baseline {
        report.apply_baseline(base);
    }

    let plots_dir = out.join("plots");
    match crate::plot::draw_all(&report, &plots_dir) {
        Ok(files) => report.info.plots = files.iter().map(|f| format!("plots/{f}")).collect(),
        Err(e) => report.info.notes.push(format!("no plots: {e}")),
    }
    report.info.load_after = load_average();
    report
        .info
        .phases
        .push(("total".into(), started.elapsed().as_secs_f64()));

    let json = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
    write(&out.join("report.json"), &json)?;
    write(&out.join("report.md"), &report.markdown())?;
    if let Some(name) = &options.save_baseline {
        let dir = out.join("baselines");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        write(&dir.join(format!("{name}.json")), &json)?;
        eprintln!("xtask: saved baseline `{name}`");
    }
    for l in &report.layers {
        eprintln!("xtask: {:<8} {}", l.layer, l.summary());
    }
    eprintln!(
        "xtask: wrote {} ({} figures, {:.0} s)",
        out.join("report.md").display(),
        report.figures.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn load_baseline(out: &Path, name: &str) -> Result<Vec<Figure>, String> {
    let path = out.join("baselines").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("baseline `{name}`: cannot read {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("baseline `{name}`: {} is not JSON: {e}", path.display()))?;
    Ok(figures_from_json(&doc))
}

fn target_dir(root: &Path) -> Result<PathBuf, String> {
    let metadata = crate::cargo_metadata(root)?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata has no target_directory".to_owned())
}

/// Executables of one release build.
struct Built {
    fog: PathBuf,
    /// Criterion bench targets by name (the layer).
    benches: BTreeMap<String, PathBuf>,
    /// The instruction-count kernels.
    instructions: Option<PathBuf>,
}

/// One `cargo build --release` of the `fog` binary and every bench target,
/// so dependencies are compiled once with one feature set.
fn build(root: &Path) -> Result<Built, String> {
    let args = [
        "build",
        "--release",
        "-p",
        "fog-cli",
        "-p",
        "fog-benches",
        "--bin",
        "fog",
        "--bench",
        "*",
        "--message-format=json-render-diagnostics",
    ];
    eprintln!("xtask: $ cargo {}", args.join(" "));
    let output = crate::cargo_command()
        .args(args)
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("release build failed ({})", output.status));
    }
    let mut fog = None;
    let mut benches = BTreeMap::new();
    let mut instructions = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = message["executable"].as_str() else {
            continue;
        };
        let name = message["target"]["name"].as_str().unwrap_or("");
        let kinds = &message["target"]["kind"];
        let is = |k: &str| kinds.as_array().is_some_and(|a| a.iter().any(|x| x == k));
        if is("bin") && name == "fog" {
            fog = Some(PathBuf::from(exe));
        } else if is("bench") && name == "instructions" {
            instructions = Some(PathBuf::from(exe));
        } else if is("bench") {
            benches.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    Ok(Built {
        fog: fog.ok_or("the build produced no `fog` binary")?,
        benches,
        instructions,
    })
}

/// Runs one criterion bench executable and reads the figures it wrote.
fn run_criterion(exe: &Path, home: &Path, quick: bool) -> Result<Vec<Figure>, String> {
    let mut args = vec!["--bench", "--noplot"];
    if quick {
        args.extend([
            "--warm-up-time",
            "0.3",
            "--measurement-time",
            "1",
            "--sample-size",
            "10",
        ]);
    }
    eprintln!("xtask: $ {} {}", exe.display(), args.join(" "));
    let since = SystemTime::now();
    let status = Command::new(exe)
        .args(&args)
        .env("CRITERION_HOME", home)
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", exe.display()));
    }
    let mut found = Vec::new();
    criterion_figures(home, since, &mut found);
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// Every `new/benchmark.json` under `dir` written since `since`, with its
/// `new/estimates.json`, as a figure: the median in nanoseconds per call, or
/// per element when the bench declares an element throughput.
fn criterion_figures(dir: &Path, since: SystemTime, out: &mut Vec<Figure>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name() == Some(OsStr::new("new")) {
            if let Some(f) = criterion_figure(&path, since) {
                out.push(f);
            }
        } else if path.file_name() != Some(OsStr::new("base"))
            && path.file_name() != Some(OsStr::new("change"))
        {
            criterion_figures(&path, since, out);
        }
    }
}

fn criterion_figure(new: &Path, since: SystemTime) -> Option<Figure> {
    let estimates_path = new.join("estimates.json");
    let modified = std::fs::metadata(&estimates_path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let read = |p: PathBuf| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    let benchmark = read(new.join("benchmark.json"))?;
    let estimates = read(estimates_path)?;
    let id = benchmark["full_id"].as_str()?;
    let median = estimates["median"]["point_estimate"].as_f64()?;
    let elements = benchmark["throughput"]["Elements"]
        .as_f64()
        .filter(|n| *n > 1.0);
    Some(Figure::new(
        id,
        Source::Criterion,
        median / elements.unwrap_or(1.0),
        "ns",
        Better::Lower,
    ))
}

/// `fog bench <layer> --json`: its numeric leaves as figures, or why there
/// are none.
fn run_scenario(fog: &Path, layer: &str, quick: bool) -> Result<Vec<Figure>, Part> {
    let mut args = vec!["--json", "bench", layer];
    match layer {
        "dao" if quick => {
            args.extend(["--events", "100000", "--votes", "5000", "--appends", "500"]);
        }
        "mix" if quick => args.extend(["--packets", "5000"]),
        "p2p" if quick => args.extend([
            "--nodes",
            "50",
            "--records",
            "20",
            "--lookups",
            "100",
            "--messages",
            "3",
        ]),
        _ => {}
    }
    eprintln!("xtask: $ fog {}", args.join(" "));
    let output = Command::new(fog)
        .args(&args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Part::Failed(format!("cannot run fog: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let document: Option<Value> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l.trim()).ok())
        .or_else(|| serde_json::from_str(stdout.trim()).ok());
    if !output.status.success() {
        let message = document
            .as_ref()
            .and_then(|d| {
                d["error"]["message"]
                    .as_str()
                    .or(d["message"].as_str())
                    .map(str::to_owned)
            })
            .or_else(|| {
                stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let part = if output.status.code() == Some(EXIT_UNAVAILABLE) {
            Part::Missing(format!("`fog bench {layer}`: {message}"))
        } else {
            Part::Failed(format!("`fog bench {layer}` {}: {message}", output.status))
        };
        return Err(part);
    }
    let document =
        document.ok_or_else(|| Part::Failed(format!("`fog bench {layer}` printed no JSON")))?;
    let mut leaves = Vec::new();
    flatten(layer, &document, &mut leaves);
    Ok(leaves
        .into_iter()
        .map(|(id, value)| {
            let (unit, better) = classify_key(&id);
            Figure::new(&id, Source::Scenario, value, unit, better)
        })
        .collect())
}

/// pymoo's NSGA-II next to fog's on ZDT problems, through
/// `fog-sched/scripts/pymoo_zdt.py --fog`, in a virtualenv with pymoo from
/// PyPI.
fn pymoo(
    root: &Path,
    out: &Path,
    fog: &Path,
    quick: bool,
    info: &mut RunInfo,
) -> Result<Vec<Figure>, String> {
    let script = root.join("fog-sched/scripts/pymoo_zdt.py");
    if !script.is_file() {
        return Err(format!("no {}", script.display()));
    }
    let venv = out.join("venv");
    let python = venv.join("bin/python");
    let has_pymoo = |python: &Path| {
        Command::new(python)
            .args(["-c", "import pymoo"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_pymoo(&python) {
        eprintln!("xtask: installing pymoo from PyPI into {}", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "pymoo"])
                .stdout(std::io::stderr())
                .status()
                .is_ok_and(|s| s.success());
        if !ok || !has_pymoo(&python) {
            return Err(
                "could not install pymoo into a virtualenv (python3 -m venv, pip install pymoo)"
                    .into(),
            );
        }
    }
    let (seeds, problems) = if quick {
        ("3", "zdt1")
    } else {
        ("11", "zdt1,zdt2,zdt3")
    };
    let args = [
        "--seeds",
        seeds,
        "--evaluations",
        "25000",
        "--problems",
        problems,
        "--crowding",
        "pcd",
    ];
    eprintln!(
        "xtask: $ pymoo_zdt.py {} --fog {}",
        args.join(" "),
        fog.display()
    );
    let output = Command::new(&python)
        .arg(&script)
        .args(args)
        .arg("--fog")
        .arg(fog)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("pymoo_zdt.py failed ({})", output.status));
    }
    let doc: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("pymoo_zdt.py printed bad JSON: {e}"))?;
    info.notes.push(format!(
        "NSGA-II reference: pymoo {} from PyPI, {seeds} seeds × 25,000 evaluations, pruning crowding distance on both sides",
        doc["pymoo_version"].as_str().unwrap_or("?")
    ));
    let mut figures = Vec::new();
    for problem in problems.split(',') {
        let (ours, theirs) = (&doc["fog"][problem], &doc["pymoo"][problem]);
        for (key, unit, better, min) in [
            ("ms_per_generation", "ms", Better::Lower, 25.0),
            ("cpu_ms_per_generation", "ms", Better::Lower, 25.0),
            ("hypervolume", "", Better::Higher, 1.0),
        ] {
            let (Some(v), Some(r)) = (ours[key].as_f64(), theirs[key].as_f64()) else {
                continue;
            };
            let mut f = Figure::new(
                &format!("sched/pymoo/{problem}/{key}"),
                Source::Scenario,
                v,
                unit,
                better,
            );
            f.reference = Some(Reference {
                name: "pymoo".into(),
                value: r,
                min_factor: Some(min),
            });
            figures.push(f);
        }
    }
    Ok(figures)
}

/// Instructions per call of each kernel of a selected layer:
/// `(Ir(N calls) - Ir(0 calls)) / N` under callgrind.
fn callgrind(
    exe: &Path,
    out: &Path,
    layers: &[String],
) -> Result<(Vec<Figure>, Vec<String>), String> {
    let probe = Command::new("valgrind").arg("--version").output();
    let version = match probe {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => return Err("valgrind is not installed".into()),
    };
    let dir = out.join("callgrind");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut figures = Vec::new();
    let mut notes = vec![format!(
        "instruction counts: {version} --tool=callgrind, (Ir({CALLGRIND_CALLS} calls) − Ir(0 calls)) / {CALLGRIND_CALLS}"
    )];
    for (kernel, layer) in KERNELS {
        if !layers.iter().any(|l| l == layer) {
            continue;
        }
        let count = |calls: usize| -> Result<u64, String> {
            let file = dir.join(format!("{kernel}.{calls}.out"));
            let output = Command::new("valgrind")
                .arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", file.display()))
                .arg(exe)
                .arg(kernel)
                .arg(calls.to_string())
                .output()
                .map_err(|e| format!("cannot run valgrind: {e}"))?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                return Err(format!("{kernel} {calls}: {}", stderr.trim()));
            }
            collected(&stderr)
                .ok_or_else(|| format!("{kernel}: no `Collected :` line from callgrind"))
        };
        eprintln!("xtask: callgrind {kernel}");
        match (count(0), count(CALLGRIND_CALLS)) {
            (Ok(setup), Ok(total)) => {
                let per_call = total.saturating_sub(setup) as f64 / CALLGRIND_CALLS as f64;
                figures.push(Figure::new(
                    &format!("{layer}/instructions/{kernel}"),
                    Source::Instructions,
                    per_call,
                    "Ir",
                    Better::Lower,
                ));
            }
            (Err(e), _) | (_, Err(e)) => {
                notes.push(format!("instruction count of {kernel} failed: {e}"));
            }
        }
    }
    Ok((figures, notes))
}

/// The `Collected : N` total of callgrind's summary.
pub(crate) fn collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        let rest = line.split("Collected :").nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Figures computed from others.
fn derive(figures: &mut Vec<Figure>) {
    let get = |id: &str, figures: &[Figure]| figures.iter().find(|f| f.id == id).map(|f| f.value);
    if let (Some(seconds), Some(events)) = (
        get("dao/verify_seconds", figures),
        get("dao/verify_events", figures),
    ) && events > 0.0
    {
        figures.push(Figure::new(
            "dao/verify_us_per_event",
            Source::Scenario,
            seconds / events * 1e6,
            "µs",
            Better::Lower,
        ));
    }
}

fn attach_targets_and_references(figures: &mut [Figure]) {
    let value_of =
        |id: &str, figures: &[Figure]| figures.iter().find(|f| f.id == id).map(|f| f.value);
    let pairs = [
        (
            "mix/process/fog-mix",
            "mix/process/sphinx-packet",
            "plain sphinx-packet",
            Some(0.9),
        ),
        (
            "exec/docker_ms_per_container",
            "exec/docker_run_ms_per_container",
            "docker run --rm",
            Some(1.0),
        ),
    ];
    for (id, reference, name, min_factor) in pairs {
        if let Some(value) = value_of(reference, figures)
            && let Some(f) = figures.iter_mut().find(|f| f.id == id)
        {
            f.reference = Some(Reference {
                name: name.to_owned(),
                value,
                min_factor,
            });
        }
    }
    for f in figures.iter_mut() {
        if let Some((_, value, source)) = TARGETS.iter().find(|(id, _, _)| *id == f.id) {
            f.target = Some(Target {
                value: *value,
                source: (*source).to_owned(),
            });
        }
    }
}

/// benches/README.md as the report links it: relative when the target
/// directory is inside the workspace, absolute otherwise.
fn readme_link(root: &Path, out: &Path) -> String {
    let readme = root.join("benches/README.md");
    match out.strip_prefix(root) {
        Ok(rel) => {
            let up = rel.components().count();
            format!("{}benches/README.md", "../".repeat(up))
        }
        Err(_) => readme.display().to_string(),
    }
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown time".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

fn git_commit(root: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

/// The 1, 5 and 15 minute load averages (the machine may be shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let mut root = PathBuf::new();
        parse(args.iter().map(|s| (*s).to_owned()).collect(), &mut root)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn layers_default_to_all_in_report_order() {
        assert_eq!(opts(&[]).layers, LAYERS);
        let o = opts(&["dao", "--quick", "mix", "dao"]);
        assert_eq!(o.layers, ["mix", "dao"]);
        assert!(o.quick);
    }

    #[test]
    fn bad_arguments_are_refused() {
        let mut root = PathBuf::new();
        assert!(parse(vec!["nosuchlayer".into()], &mut root).is_err());
        assert!(parse(vec!["--baseline".into()], &mut root).is_err());
        assert!(parse(vec!["--baseline".into(), "../x".into()], &mut root).is_err());
    }

    #[test]
    fn the_report_links_the_readme_from_where_it_is() {
        let root = Path::new("/w/fog");
        assert_eq!(
            readme_link(root, &root.join("target/fog-bench")),
            "../../benches/README.md"
        );
        assert_eq!(
            readme_link(root, Path::new("/t/fog-bench")),
            "/w/fog/benches/README.md"
        );
    }

    #[test]
    fn callgrind_total_is_parsed() {
        let stderr = "==12== Events    : Ir\n==12== Collected : 1234567\n==12==\n==12== I   refs:      1,234,567\n";
        assert_eq!(collected(stderr), Some(1_234_567));
        assert_eq!(collected("nothing"), None);
    }

    #[test]
    fn targets_and_references_attach_by_id() {
        let mut figures = vec![
            Figure::new(
                "mix/process/fog-mix",
                Source::Criterion,
                30_000.0,
                "ns",
                Better::Lower,
            ),
            Figure::new(
                "mix/process/sphinx-packet",
                Source::Criterion,
                27_000.0,
                "ns",
                Better::Lower,
            ),
            Figure::new(
                "dao/verify_seconds",
                Source::Scenario,
                0.1,
                "s",
                Better::Lower,
            ),
            Figure::new(
                "dao/verify_events",
                Source::Scenario,
                100_000.0,
                "",
                Better::Neither,
            ),
        ];
        derive(&mut figures);
        attach_targets_and_references(&mut figures);
        let mix = &figures[0];
        assert_eq!(mix.reference.as_ref().unwrap().value, 27_000.0);
        assert!((mix.vs_reference().unwrap() - 0.9).abs() < 1e-9);
        assert!(mix.vs_target().unwrap() > 1.0);
        let per_event = figures
            .iter()
            .find(|f| f.id == "dao/verify_us_per_event")
            .unwrap();
        assert!((per_event.value - 1.0).abs() < 1e-9);
        assert!(per_event.target.is_some());
    }

    #[test]
    fn criterion_files_become_figures() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("sched_nsga2/zdt1_generation/10/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"sched/nsga2","function_id":"zdt1_generation","value_str":"10","throughput":{"Elements":10},"full_id":"sched/nsga2/zdt1_generation/10","directory_name":"sched_nsga2/zdt1_generation/10","title":"x"}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"point_estimate":2100000.0},"median":{"point_estimate":2000000.0}}"#,
        )
        .unwrap();
        let mut found = Vec::new();
        criterion_figures(dir.path(), SystemTime::UNIX_EPOCH, &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "sched/nsga2/zdt1_generation/10");
        assert_eq!(found[0].value, 200_000.0);
        let mut none = Vec::new();
        criterion_figures(
            dir.path(),
            SystemTime::now() + std::time::Duration::from_mins(1),
            &mut none,
        );
        assert!(none.is_empty());
    }
}

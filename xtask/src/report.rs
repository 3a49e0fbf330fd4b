//! The benchmark report's model: figures with their reference, target and
//! baseline, the per-layer status, and the Markdown and JSON renderings.
//! Pure functions only (the runs happen in `bench.rs`), so they are tested
//! here on made-up figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

/// Every layer, in the order the report lists them.
pub(crate) const LAYERS: &[&str] = &["mix", "p2p", "mesh", "sched", "exec", "harvest", "dao"];

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Lower,
    Higher,
    /// A count or setting: no direction, no ratio.
    Neither,
}

impl Better {
    fn name(self) -> &'static str {
        match self {
            Better::Lower => "lower",
            Better::Higher => "higher",
            Better::Neither => "neither",
        }
    }

    fn parse(text: &str) -> Better {
        match text {
            "lower" => Better::Lower,
            "higher" => Better::Higher,
            _ => Better::Neither,
        }
    }

    /// `value` against `other` as a factor where above 1 is good: `other /
    /// value` when lower is better, `value / other` when higher is.
    pub(crate) fn factor(self, value: f64, other: f64) -> Option<f64> {
        let f = match self {
            Better::Lower => other / value,
            Better::Higher => value / other,
            Better::Neither => return None,
        };
        f.is_finite().then_some(f)
    }
}

/// Where a figure was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A criterion benchmark of the `fog-benches` crate (median per call).
    Criterion,
    /// `fog bench <layer> --json`, or a side-by-side reference script.
    Scenario,
    /// Instructions per call under callgrind.
    Instructions,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Criterion => "criterion",
            Source::Scenario => "scenario",
            Source::Instructions => "instructions",
        }
    }

    fn parse(text: &str) -> Source {
        match text {
            "criterion" => Source::Criterion,
            "instructions" => Source::Instructions,
            _ => Source::Scenario,
        }
    }
}

/// A reference measured in the same run, in the figure's unit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reference {
    pub(crate) name: String,
    pub(crate) value: f64,
    /// The smallest acceptable factor against the reference (above 1 means
    /// fog must beat it), when the layer's issue sets one.
    pub(crate) min_factor: Option<f64>,
}

/// A target from the layer's issue, in the figure's unit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub(crate) value: f64,
    pub(crate) source: String,
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    /// `layer/...`, unique in a report, stable across runs.
    pub(crate) id: String,
    pub(crate) layer: String,
    pub(crate) source: Source,
    pub(crate) value: f64,
    pub(crate) unit: String,
    pub(crate) better: Better,
    pub(crate) reference: Option<Reference>,
    pub(crate) target: Option<Target>,
    /// The same figure in the baseline, when one was given and had it.
    pub(crate) baseline: Option<f64>,
}

impl Figure {
    pub(crate) fn new(id: &str, source: Source, value: f64, unit: &str, better: Better) -> Figure {
        Figure {
            layer: id.split('/').next().unwrap_or(id).to_owned(),
            id: id.to_owned(),
            source,
            value,
            unit: unit.to_owned(),
            better,
            reference: None,
            target: None,
            baseline: None,
        }
    }

    /// The factor against the reference (above 1: fog is better).
    pub(crate) fn vs_reference(&self) -> Option<f64> {
        let r = self.reference.as_ref()?;
        self.better.factor(self.value, r.value)
    }

    /// The factor against the target (1 or more: met).
    pub(crate) fn vs_target(&self) -> Option<f64> {
        let t = self.target.as_ref()?;
        self.better.factor(self.value, t.value)
    }

    /// Relative change against the baseline (`value / baseline - 1`).
    pub(crate) fn change(&self) -> Option<f64> {
        let b = self.baseline?;
        let c = self.value / b - 1.0;
        (b != 0.0 && c.is_finite()).then_some(c)
    }

    /// Whether the change against the baseline is an improvement.
    pub(crate) fn improved(&self) -> Option<bool> {
        let c = self.change()?;
        match self.better {
            Better::Lower => Some(c < 0.0),
            Better::Higher => Some(c > 0.0),
            Better::Neither => None,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "layer": self.layer,
            "source": self.source.name(),
            "value": self.value,
            "unit": self.unit,
            "better": self.better.name(),
            "reference": self.reference.as_ref().map(|r| json!({
                "name": r.name, "value": r.value, "min_factor": r.min_factor,
            })),
            "vs_reference": self.vs_reference(),
            "target": self.target.as_ref().map(|t| json!({ "value": t.value, "source": t.source })),
            "vs_target": self.vs_target(),
            "baseline": self.baseline,
            "change": self.change(),
        })
    }

    fn from_json(v: &Value) -> Option<Figure> {
        let mut f = Figure::new(
            v["id"].as_str()?,
            Source::parse(v["source"].as_str().unwrap_or("")),
            v["value"].as_f64()?,
            v["unit"].as_str().unwrap_or(""),
            Better::parse(v["better"].as_str().unwrap_or("")),
        );
        f.reference = v["reference"].as_object().and_then(|r| {
            Some(Reference {
                name: r.get("name")?.as_str()?.to_owned(),
                value: r.get("value")?.as_f64()?,
                min_factor: r.get("min_factor").and_then(Value::as_f64),
            })
        });
        f.target = v["target"].as_object().and_then(|t| {
            Some(Target {
                value: t.get("value")?.as_f64()?,
                source: t.get("source")?.as_str()?.to_owned(),
            })
        });
        Some(f)
    }
}

/// What happened to one part of a layer's benchmarks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    /// Ran; how many figures it gave.
    Ran(usize),
    /// Does not exist yet (the reason, e.g. the command's own message).
    Missing(String),
    /// Exists but failed (the reason).
    Failed(String),
    /// Not selected in this run (e.g. no valgrind).
    Skipped(String),
}

impl Part {
    fn text(&self) -> String {
        match self {
            Part::Ran(n) => format!("ran ({n} figures)"),
            Part::Missing(why) => format!("**missing**: {why}"),
            Part::Failed(why) => format!("**failed**: {why}"),
            Part::Skipped(why) => format!("skipped: {why}"),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Part::Ran(n) => json!({ "status": "ran", "figures": n }),
            Part::Missing(why) => json!({ "status": "missing", "reason": why }),
            Part::Failed(why) => json!({ "status": "failed", "reason": why }),
            Part::Skipped(why) => json!({ "status": "skipped", "reason": why }),
        }
    }
}

/// The benchmark parts of one layer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerStatus {
    pub(crate) layer: String,
    /// Whether the layer's crate exists in the workspace.
    pub(crate) crate_exists: bool,
    pub(crate) criterion: Part,
    pub(crate) scenario: Part,
    /// The side-by-side reference of the layer, if it has one.
    pub(crate) reference: Option<Part>,
}

impl LayerStatus {
    pub(crate) fn new(layer: &str, crate_exists: bool) -> LayerStatus {
        let unrun = Part::Skipped("not run".to_owned());
        LayerStatus {
            layer: layer.to_owned(),
            crate_exists,
            criterion: unrun.clone(),
            scenario: unrun,
            reference: None,
        }
    }

    /// `measured`, `partial` (something missing or failed) or `missing`
    /// (nothing ran).
    pub(crate) fn summary(&self) -> &'static str {
        let parts = [
            Some(&self.criterion),
            Some(&self.scenario),
            self.reference.as_ref(),
        ];
        let ran = parts.iter().flatten().any(|p| matches!(p, Part::Ran(_)));
        let gap = parts
            .iter()
            .flatten()
            .any(|p| matches!(p, Part::Missing(_) | Part::Failed(_)));
        match (ran, gap) {
            (false, _) => "missing",
            (true, true) => "partial",
            (true, false) => "measured",
        }
    }
}

/// Facts about the run printed at the top of the report.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunInfo {
    pub(crate) started: String,
    pub(crate) quick: bool,
    pub(crate) commit: String,
    pub(crate) cpus: usize,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) baseline: Option<String>,
    /// (phase, seconds).
    pub(crate) phases: Vec<(String, f64)>,
    /// Free-form notes (versions of references, skipped parts).
    pub(crate) notes: Vec<String>,
    /// Plot files, relative to the report's directory.
    pub(crate) plots: Vec<String>,
    /// Link from the report to benches/README.md.
    pub(crate) readme: String,
}

/// A whole report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    pub(crate) info: RunInfo,
    pub(crate) layers: Vec<LayerStatus>,
    pub(crate) figures: Vec<Figure>,
}

impl Report {
    /// Attaches baseline values by figure id.
    pub(crate) fn apply_baseline(&mut self, baseline: &[Figure]) {
        let by_id: BTreeMap<&str, f64> =
            baseline.iter().map(|f| (f.id.as_str(), f.value)).collect();
        for f in &mut self.figures {
            f.baseline = by_id.get(f.id.as_str()).copied();
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        let i = &self.info;
        json!({
            "started": i.started,
            "quick": i.quick,
            "commit": i.commit,
            "cpus": i.cpus,
            "load_before": i.load_before,
            "load_after": i.load_after,
            "baseline": i.baseline,
            "phases": i.phases.iter().map(|(p, s)| json!({ "phase": p, "seconds": s })).collect::<Vec<_>>(),
            "notes": i.notes,
            "plots": i.plots,
            "layers": self.layers.iter().map(|l| json!({
                "layer": l.layer,
                "crate_exists": l.crate_exists,
                "status": l.summary(),
                "criterion": l.criterion.to_json(),
                "scenario": l.scenario.to_json(),
                "reference": l.reference.as_ref().map(Part::to_json),
            })).collect::<Vec<_>>(),
            "figures": self.figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
        })
    }

    pub(crate) fn markdown(&self) -> String {
        let i = &self.info;
        let mut out = String::new();
        let _ = writeln!(out, "# fog benchmark report\n");
        let _ = writeln!(
            out,
            "How to read this report: [benches/README.md]({}). \
             Every ratio is a factor where **above 1 is good** (faster, or more per second); \
             `✓`/`✗` say whether a target or a minimum factor is met.\n",
            i.readme
        );
        let _ = writeln!(
            out,
            "- run: {} ({}), commit {}\n- machine: {} CPUs, load average before {} / after {}\n- baseline: {}",
            i.started,
            if i.quick { "--quick" } else { "full" },
            i.commit,
            i.cpus,
            i.load_before,
            i.load_after,
            i.baseline
                .as_deref()
                .unwrap_or("none (use --baseline NAME)"),
        );
        let phases: Vec<String> = i
            .phases
            .iter()
            .map(|(p, s)| format!("{p} {s:.0} s"))
            .collect();
        let _ = writeln!(out, "- time: {}", phases.join(", "));
        for note in &i.notes {
            let _ = writeln!(out, "- {note}");
        }

        let _ = writeln!(out, "\n## Layers\n");
        let _ = writeln!(
            out,
            "| layer | status | criterion | `fog bench <layer> --json` | reference |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for l in &self.layers {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                l.layer,
                l.summary(),
                l.criterion.text(),
                l.scenario.text(),
                l.reference.as_ref().map_or("none".to_owned(), Part::text),
            );
        }

        let compared: Vec<&Figure> = self
            .figures
            .iter()
            .filter(|f| f.reference.is_some() || f.target.is_some())
            .collect();
        if !compared.is_empty() {
            let _ = writeln!(out, "\n## Figures against references and targets\n");
            table(&mut out, &compared, true);
        }
        if !i.plots.is_empty() {
            let _ = writeln!(out, "\n## Plots\n");
            for plot in i.plots.iter().filter(|p| {
                std::path::Path::new(p)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
            }) {
                let _ = writeln!(out, "![{plot}]({plot})\n");
            }
        }
        for layer in LAYERS {
            let figures: Vec<&Figure> = self.figures.iter().filter(|f| f.layer == *layer).collect();
            if figures.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n## {layer}\n");
            for source in [Source::Criterion, Source::Scenario, Source::Instructions] {
                let part: Vec<&Figure> = figures
                    .iter()
                    .copied()
                    .filter(|f| f.source == source)
                    .collect();
                if part.is_empty() {
                    continue;
                }
                let heading = match source {
                    Source::Criterion => "criterion (median per call)",
                    Source::Scenario => "scenario and reference runs",
                    Source::Instructions => "instructions per call (callgrind)",
                };
                let _ = writeln!(out, "### {heading}\n");
                table(&mut out, &part, false);
                out.push('\n');
            }
        }
        out
    }
}

fn table(out: &mut String, figures: &[&Figure], compared_only: bool) {
    let _ = writeln!(
        out,
        "| figure | value | reference | vs reference | target | vs target | vs baseline |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|");
    for f in figures {
        if compared_only && f.reference.is_none() && f.target.is_none() {
            continue;
        }
        let reference = f.reference.as_ref().map_or("–".to_owned(), |r| {
            format!("{}: {}", r.name, human(r.value, &f.unit))
        });
        let vs_reference = f.vs_reference().map_or("–".to_owned(), |x| {
            let mark = f
                .reference
                .as_ref()
                .and_then(|r| r.min_factor)
                .map_or(String::new(), |min| {
                    format!(" {} (≥ {min})", if x >= min { "✓" } else { "✗" })
                });
            format!("{}{mark}", factor(x))
        });
        let target = f.target.as_ref().map_or("–".to_owned(), |t| {
            let op = if f.better == Better::Lower {
                "≤"
            } else {
                "≥"
            };
            format!("{op} {}", human(t.value, &f.unit))
        });
        let vs_target = f.vs_target().map_or("–".to_owned(), |x| {
            format!("{} {}", factor(x), if x >= 1.0 { "✓" } else { "✗" })
        });
        let change = match (f.change(), f.improved()) {
            (Some(c), Some(better)) => {
                format!(
                    "{:+.1}% {}",
                    c * 100.0,
                    if better { "better" } else { "worse" }
                )
            }
            (Some(c), None) => format!("{:+.1}%", c * 100.0),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {reference} | {vs_reference} | {target} | {vs_target} | {change} |",
            f.id,
            human(f.value, &f.unit)
        );
    }
}

/// A factor printed with sensible precision.
fn factor(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}×")
    } else if x >= 10.0 {
        format!("{x:.1}×")
    } else {
        format!("{x:.2}×")
    }
}

/// A value with its unit; nanoseconds are scaled to the readable unit.
pub(crate) fn human(value: f64, unit: &str) -> String {
    if unit == "ns" {
        let (v, u) = if value >= 1e9 {
            (value / 1e9, "s")
        } else if value >= 1e6 {
            (value / 1e6, "ms")
        } else if value >= 1e3 {
            (value / 1e3, "µs")
        } else {
            (value, "ns")
        };
        return format!("{} {u}", significant(v));
    }
    let v = significant(value);
    if unit.is_empty() {
        v
    } else {
        format!("{v} {unit}")
    }
}

/// Four significant digits, thousands separated.
fn significant(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        let rounded = v.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (k, ch) in digits.chars().enumerate() {
            if k > 0 && (digits.len() - k).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        if rounded < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Reads the figures of a saved report (`report.json` or a baseline).
pub(crate) fn figures_from_json(document: &Value) -> Vec<Figure> {
    document["figures"]
        .as_array()
        .map(|a| a.iter().filter_map(Figure::from_json).collect())
        .unwrap_or_default()
}

/// Unit and direction of a `fog bench` JSON key, from its name.
pub(crate) fn classify_key(key: &str) -> (&'static str, Better) {
    let last = key.rsplit('/').next().unwrap_or(key);
    if last.ends_with("_per_cpu_s") {
        ("/cpu-s", Better::Higher)
    } else if last.ends_with("_per_s") || last.ends_with("_pps") {
        ("/s", Better::Higher)
    } else if last.ends_with("_us") {
        ("µs", Better::Lower)
    } else if last.ends_with("_ms")
        || last.contains("ms_per_")
        || last.ends_with("_ms_per_container")
    {
        ("ms", Better::Lower)
    } else if last.ends_with("seconds") {
        ("s", Better::Lower)
    } else if last == "hypervolume" {
        ("", Better::Higher)
    } else if last == "igd" || last.contains("overhead") || last.ends_with("violations") {
        ("", Better::Lower)
    } else if last.contains("delivery") || last.contains("success") || last.starts_with("ratio") {
        ("", Better::Higher)
    } else if last.contains("duplicates") || last.contains("hops") {
        ("", Better::Lower)
    } else {
        ("", Better::Neither)
    }
}

/// Numeric leaves of a JSON document as (`a/b/c`, value); arrays are skipped.
pub(crate) fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, f64)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}/{k}"), v, out);
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_owned(), x));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(id: &str, value: f64, better: Better) -> Figure {
        Figure::new(id, Source::Scenario, value, "ms", better)
    }

    #[test]
    fn factors_are_above_one_when_fog_is_better() {
        let mut f = figure("sched/x", 2.0, Better::Lower);
        f.reference = Some(Reference {
            name: "pymoo".into(),
            value: 50.0,
            min_factor: Some(25.0),
        });
        f.target = Some(Target {
            value: 4.0,
            source: "issue".into(),
        });
        assert_eq!(f.vs_reference(), Some(25.0));
        assert_eq!(f.vs_target(), Some(2.0));
        let mut g = figure("dao/rate_per_s", 20_000.0, Better::Higher);
        g.target = Some(Target {
            value: 25_000.0,
            source: "issue".into(),
        });
        assert_eq!(g.vs_target(), Some(0.8));
        assert_eq!(figure("a/b", 1.0, Better::Neither).vs_target(), None);
    }

    #[test]
    fn baseline_change_knows_which_way_is_better() {
        let mut report = Report {
            figures: vec![
                figure("mix/t", 90.0, Better::Lower),
                figure("mix/r_per_s", 90.0, Better::Higher),
            ],
            ..Report::default()
        };
        report.apply_baseline(&[
            figure("mix/t", 100.0, Better::Lower),
            figure("mix/r_per_s", 100.0, Better::Higher),
        ]);
        assert!((report.figures[0].change().unwrap() + 0.1).abs() < 1e-12);
        assert_eq!(report.figures[0].improved(), Some(true));
        assert_eq!(report.figures[1].improved(), Some(false));
    }

    #[test]
    fn json_round_trip_keeps_figures() {
        let mut f = figure("exec/start_p50_us", 12.0, Better::Lower);
        f.target = Some(Target {
            value: 50.0,
            source: "issue 7".into(),
        });
        f.reference = Some(Reference {
            name: "r".into(),
            value: 3.0,
            min_factor: None,
        });
        let report = Report {
            figures: vec![f.clone()],
            ..Report::default()
        };
        assert_eq!(figures_from_json(&report.to_json()), vec![f]);
    }

    #[test]
    fn a_layer_with_nothing_run_is_missing_and_listed() {
        let mut p2p = LayerStatus::new("p2p", false);
        p2p.criterion = Part::Missing("no crate fog-p2p".into());
        p2p.scenario = Part::Missing("`fog bench p2p`: not available yet".into());
        let mut mix = LayerStatus::new("mix", true);
        mix.criterion = Part::Ran(8);
        mix.scenario = Part::Missing("not available yet".into());
        assert_eq!(p2p.summary(), "missing");
        assert_eq!(mix.summary(), "partial");
        let report = Report {
            layers: vec![mix, p2p],
            ..Report::default()
        };
        let md = report.markdown();
        assert!(md.contains("| p2p | missing |"), "{md}");
        assert!(md.contains("| mix | partial |"), "{md}");
    }

    #[test]
    fn keys_get_units_from_their_names() {
        assert_eq!(classify_key("exec/start_p50_us"), ("µs", Better::Lower));
        assert_eq!(
            classify_key("dao/verify_batch_per_cpu_s"),
            ("/cpu-s", Better::Higher)
        );
        assert_eq!(classify_key("mesh/encode_per_s"), ("/s", Better::Higher));
        assert_eq!(
            classify_key("sched/nsga2/zdt1/ms_per_generation"),
            ("ms", Better::Lower)
        );
        assert_eq!(
            classify_key("sched/place/decision_p99_ms"),
            ("ms", Better::Lower)
        );
        assert_eq!(classify_key("dao/verify_seconds"), ("s", Better::Lower));
        assert_eq!(classify_key("mesh/bundle_bytes"), ("", Better::Neither));
        assert_eq!(classify_key("mix/ratio"), ("", Better::Higher));
        assert_eq!(
            classify_key("p2p/duplicates_per_message"),
            ("", Better::Lower)
        );
        assert_eq!(
            classify_key("p2p/lookup_success_ratio"),
            ("", Better::Higher)
        );
    }

    #[test]
    fn human_scales_nanoseconds() {
        assert_eq!(human(1_234.0, "ns"), "1.23 µs");
        assert_eq!(human(45_000_000.0, "ns"), "45.00 ms");
        assert_eq!(human(123_456.0, "/s"), "123,456 /s");
    }

    #[test]
    fn flatten_takes_numeric_leaves() {
        let mut out = Vec::new();
        flatten(
            "sched",
            &json!({ "a": { "b": 1.5, "c": "x" }, "d": [1, 2], "e": 3 }),
            &mut out,
        );
        assert_eq!(
            out,
            vec![("sched/a/b".to_owned(), 1.5), ("sched/e".to_owned(), 3.0)]
        );
    }
}

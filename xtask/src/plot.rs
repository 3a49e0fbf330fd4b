//! The report's plots, each as SVG and PNG (plotters; text is drawn with
//! DejaVu Sans or Liberation Sans read from the system's font directory,
//! through ab_glyph, so no fontconfig or freetype is needed).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::report::{Report, Source};

/// Fonts tried, in order.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

const FONT: &str = "sans-serif";

/// One bar.
struct Bar {
    label: String,
    value: f64,
    good: bool,
}

const GOOD: RGBColor = RGBColor(46, 139, 87);
const BAD: RGBColor = RGBColor(205, 55, 55);
const NEUTRAL: RGBColor = RGBColor(70, 110, 180);

fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = FONTS
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| format!("no TTF font found (tried {})", FONTS.join(", ")))?;
            // The font lives as long as the process, as plotters requires.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT, FontStyle::Normal, bytes)
                .map_err(|_| "the system font could not be parsed".to_owned())
        })
        .clone()
}

/// Draws every plot of `report` into `dir`; returns the file names.
pub(crate) fn draw_all(report: &Report, dir: &Path) -> Result<Vec<String>, String> {
    register_font()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut files = Vec::new();

    let ratios: Vec<Bar> = report
        .figures
        .iter()
        .flat_map(|f| {
            let reference = f.vs_reference().map(|x| {
                let r = f
                    .reference
                    .as_ref()
                    .expect("vs_reference implies a reference");
                Bar {
                    label: format!("{} vs {}", f.id, r.name),
                    value: x,
                    good: x >= r.min_factor.unwrap_or(1.0),
                }
            });
            let target = f.vs_target().map(|x| Bar {
                label: format!("{} vs target", f.id),
                value: x,
                good: x >= 1.0,
            });
            reference.into_iter().chain(target)
        })
        .collect();
    if !ratios.is_empty() {
        let (lo, hi) = log_bounds(&ratios, 1.0);
        files.extend(both(dir, "ratios", |area| {
            bars(
                area,
                "fog against references and targets (factor, above 1 is better)",
                "factor (log scale)",
                &ratios,
                (lo..hi).log_scale(),
                lo,
                Some(1.0),
            )
        })?);
    }

    let per_call: Vec<Bar> = report
        .figures
        .iter()
        .filter(|f| f.source == Source::Criterion)
        .map(|f| Bar {
            label: f.id.clone(),
            value: f.value / 1e3,
            good: f.vs_target().is_none_or(|x| x >= 1.0),
        })
        .collect();
    if !per_call.is_empty() {
        let (lo, hi) = log_bounds(&per_call, f64::NAN);
        files.extend(both(dir, "criterion", |area| {
            bars(
                area,
                "criterion: median time per call (per element where the bench counts elements)",
                "µs (log scale)",
                &per_call,
                (lo..hi).log_scale(),
                lo,
                None,
            )
        })?);
    }

    let instructions: Vec<Bar> = report
        .figures
        .iter()
        .filter(|f| f.source == Source::Instructions)
        .map(|f| Bar {
            label: f.id.clone(),
            value: f.value,
            good: true,
        })
        .collect();
    if !instructions.is_empty() {
        let (lo, hi) = log_bounds(&instructions, f64::NAN);
        files.extend(both(dir, "instructions", |area| {
            bars(
                area,
                "instructions per call (callgrind)",
                "instructions (log scale)",
                &instructions,
                (lo..hi).log_scale(),
                lo,
                None,
            )
        })?);
    }

    let changes: Vec<Bar> = report
        .figures
        .iter()
        .filter_map(|f| {
            Some(Bar {
                label: f.id.clone(),
                value: f.change()? * 100.0,
                good: f.improved()?,
            })
        })
        .collect();
    if !changes.is_empty() {
        let extreme = changes
            .iter()
            .map(|b| b.value.abs())
            .fold(5.0_f64, f64::max)
            .min(1000.0)
            * 1.1;
        let title = format!(
            "change against baseline `{}` (%)",
            report.info.baseline.as_deref().unwrap_or("?")
        );
        files.extend(both(dir, "baseline", |area| {
            bars(
                area,
                &title,
                "% change (green: better)",
                &changes,
                -extreme..extreme,
                0.0,
                Some(0.0),
            )
        })?);
    }
    Ok(files)
}

/// Log-axis bounds around the bars' values (and `include`, if not NaN).
fn log_bounds(bars: &[Bar], include: f64) -> (f64, f64) {
    let values = bars
        .iter()
        .map(|b| b.value)
        .chain((!include.is_nan()).then_some(include))
        .filter(|v| *v > 0.0 && v.is_finite());
    let (min, max) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if min > max {
        return (0.1, 10.0);
    }
    (
        10f64.powf(min.log10().floor()),
        10f64.powf(max.log10().ceil().max(min.log10().floor() + 1.0)),
    )
}

/// Draws one chart as `stem.svg` and `stem.png`.
fn both(
    dir: &Path,
    stem: &str,
    draw: impl Fn(Output) -> Result<(), String>,
) -> Result<Vec<String>, String> {
    draw(Output::Svg(dir.join(format!("{stem}.svg"))))?;
    draw(Output::Png(dir.join(format!("{stem}.png"))))?;
    Ok(vec![format!("{stem}.svg"), format!("{stem}.png")])
}

/// Where a chart goes, and with which backend.
enum Output {
    Svg(PathBuf),
    Png(PathBuf),
}

fn bars<X>(
    output: Output,
    title: &str,
    x_desc: &str,
    bars: &[Bar],
    x: X,
    origin: f64,
    marker: Option<f64>,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let longest = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(10);
    let label_width = (longest as u32 * 7 + 20).clamp(120, 520);
    let size = (label_width + 640, 90 + 22 * bars.len() as u32);
    match output {
        Output::Svg(path) => {
            let area = SVGBackend::new(&path, size).into_drawing_area();
            chart(&area, title, x_desc, bars, x, origin, marker, label_width)
        }
        Output::Png(path) => {
            let area = BitMapBackend::new(&path, size).into_drawing_area();
            chart(&area, title, x_desc, bars, x, origin, marker, label_width)
        }
    }
}

#[allow(clippy::too_many_arguments)] // one private drawing routine; a struct would only rename them
fn chart<DB, X>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    bars: &[Bar],
    x: X,
    origin: f64,
    marker: Option<f64>,
    label_width: u32,
) -> Result<(), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(err)?;
    let n = bars.len();
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_width)
        .build_cartesian_2d(x, (0..n).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_style((FONT, 12))
        .x_label_style((FONT, 12))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars.get(*i).map_or(String::new(), |b| b.label.clone()),
            _ => String::new(),
        })
        .x_desc(x_desc)
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let color = if b.good { GOOD } else { BAD };
            let color = if marker.is_none() && b.good {
                NEUTRAL
            } else {
                color
            };
            let mut r = Rectangle::new(
                [
                    (origin, SegmentValue::Exact(i)),
                    (b.value, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            r.set_margin(3, 3, 0, 0);
            r
        }))
        .map_err(err)?;
    if let Some(m) = marker {
        chart
            .draw_series(LineSeries::new(
                [(m, SegmentValue::Exact(0)), (m, SegmentValue::Exact(n))],
                BLACK.stroke_width(2),
            ))
            .map_err(err)?;
    }
    area.present().map_err(err)?;
    Ok(())
}

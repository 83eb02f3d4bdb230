//! The plots of a report, each written as PNG and SVG.
//!
//! - [`timeline`]: per system, delivery and latency over time, events marked.
//! - [`zoom`]: the same in 10 ms bins, ±1 s around each event.
//! - [`cdf`]: latency CDF, one line per system.
//! - [`link_share`]: share of bytes each link carried, bars per system.
//!
//! Plotters runs headless here (no fontconfig): the text font is
//! circus-lab/assets/DejaVuSans.ttf, compiled in and registered as
//! "sans-serif" before the first plot.

pub mod cdf;
pub mod link_share;
pub mod timeline;
pub mod zoom;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::{DirectionSeries, ReportError, Summary};
use crate::metrics::{SystemMetrics, SystemSeries, TimelineEvent};

/// The only font the plots use, in every text style.
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Colours of the systems, in the order they ran: the Okabe-Ito palette,
/// which stays distinguishable for colour-blind readers; yellow left out
/// (unreadable on white).
const SYSTEM_COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];
/// Colours of the links in the share plot: the same palette in another order,
/// so a link is not mistaken for the system of the same colour elsewhere.
const LINK_COLORS: [RGBColor; 6] = [
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
];
/// Timeline events: dark grey lines, light grey shading while they last.
const EVENT_COLOR: RGBColor = RGBColor(90, 90, 90);

/// A chart with numbers on both axes.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One system, or one direction of its probe stream, as the plots see it.
#[derive(Clone)]
pub struct PlottedSystem<'a> {
    /// What the plots call it: the system's name, with the direction when
    /// the run had probes both ways ("circus down").
    pub name: String,
    /// The system's name alone.
    pub system: &'a str,
    pub metrics: &'a SystemMetrics,
    /// Missing for a system without time series (it is left out of the
    /// time-based plots).
    pub series: Option<&'a SystemSeries>,
    /// The system's colour, the same in every plot.
    pub color: RGBColor,
    /// The download stream: drawn dashed, so it is told apart from the
    /// upload in the same colour.
    pub download: bool,
}

/// What every plot draws from.
pub struct PlotInput<'a> {
    pub scenario: &'a str,
    pub duration_s: f64,
    pub systems: Vec<PlottedSystem<'a>>,
    pub events: &'a [TimelineEvent],
}

/// A figure that can be drawn on any plotters backend.
pub trait Plot {
    /// File stem: the plot is written as `<name>.png` and `<name>.svg`.
    const NAME: &'static str;

    /// Size in pixels.
    fn size(&self, input: &PlotInput<'_>) -> (u32, u32);

    fn draw<DB: DrawingBackend>(
        &self,
        input: &PlotInput<'_>,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

/// The plots written, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPlots {
    names: Vec<&'static str>,
}

impl WrittenPlots {
    pub fn names(&self) -> Vec<&str> {
        self.names.clone()
    }

    /// Both files of every plot.
    pub fn paths(&self, dir: &Path) -> Vec<PathBuf> {
        self.names
            .iter()
            .flat_map(|name| ["png", "svg"].map(|ext| dir.join(format!("{name}.{ext}"))))
            .collect()
    }
}

/// Draws every plot into `dir` as PNG and SVG. The time-based plots show
/// each system once per direction it carried probes ("circus up", "circus
/// down"); the link share once per system (links carry both directions).
/// Systems come in the order they ran (the scenario's), each in its own
/// colour everywhere, its download stream dashed.
pub fn write_plots(
    dir: &Path,
    summary: &Summary,
    series: &BTreeMap<String, DirectionSeries>,
    events: &[TimelineEvent],
) -> Result<WrittenPlots, ReportError> {
    register_embedded_font()?;
    let both_ways = series.values().any(|s| s.down.is_some());
    let systems: Vec<PlottedSystem<'_>> = system_colors(summary)
        .into_iter()
        .map(|(name, metrics, color)| PlottedSystem {
            name: name.to_string(),
            system: name,
            metrics,
            series: series.get(name).map(|s| &s.up),
            color,
            download: false,
        })
        .collect();
    let mut streams = Vec::new();
    for system in &systems {
        streams.push(PlottedSystem {
            name: if both_ways {
                format!("{} up", system.system)
            } else {
                system.system.to_string()
            },
            ..system.clone()
        });
        if let Some(down) = series.get(system.system).and_then(|s| s.down.as_ref()) {
            streams.push(PlottedSystem {
                name: format!("{} down", system.system),
                series: Some(down),
                download: true,
                ..system.clone()
            });
        }
    }
    let input = |systems| PlotInput {
        scenario: &summary.scenario,
        duration_s: summary.duration_s,
        systems,
        events,
    };
    let by_stream = input(streams);
    let mut names = vec![timeline::Timeline::NAME];
    render(dir, &by_stream, &timeline::Timeline)?;
    if !events.is_empty() {
        render(dir, &by_stream, &zoom::EventZoom)?;
        names.push(zoom::EventZoom::NAME);
    }
    render(dir, &by_stream, &cdf::LatencyCdf)?;
    render(dir, &input(systems), &link_share::LinkShare)?;
    names.extend([cdf::LatencyCdf::NAME, link_share::LinkShare::NAME]);
    Ok(WrittenPlots { names })
}

/// Each system with its figures and colour: colours go by the order the
/// systems ran, so the scenario's first system is always blue.
pub fn system_colors(summary: &Summary) -> Vec<(&str, &SystemMetrics, RGBColor)> {
    summary
        .systems_in_order()
        .zip(SYSTEM_COLORS.iter().cycle())
        .map(|((name, metrics), &color)| (name, metrics, color))
        .collect()
}

fn register_embedded_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| register_font(FONT, style, FONT_BYTES).is_ok())
    });
    if registered {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

fn render<P: Plot>(dir: &Path, input: &PlotInput<'_>, plot: &P) -> Result<(), ReportError> {
    let size = plot.size(input);
    let png = dir.join(format!("{}.png", P::NAME));
    let plot_error = |path: &Path, message: String| ReportError::Plot {
        path: path.to_path_buf(),
        message,
    };
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        plot.draw(input, &root)
            .and_then(|()| root.present())
            .map_err(|e| plot_error(&png, e.to_string()))?;
    }
    let svg = dir.join(format!("{}.svg", P::NAME));
    let root = SVGBackend::new(&svg, size).into_drawing_area();
    plot.draw(input, &root)
        .and_then(|()| root.present())
        .map_err(|e| plot_error(&svg, e.to_string()))
}

/// Text in the plots' font.
fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// A bold title.
fn title_font(size: u32) -> TextStyle<'static> {
    (FONT, size, FontStyle::Bold).into_font().into()
}

/// An axis tick: whole numbers without decimals, others with one; nothing
/// above `hide_above`, where an axis leaves headroom for labels and legends.
fn tick(value: f64, hide_above: f64) -> String {
    if value > hide_above + 1e-9 {
        String::new()
    } else if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// A line in a stream's style: solid for the upload, dashed for the
/// download; labelled in the chart's legend if `label` is given.
fn stream_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    points: Vec<(f64, f64)>,
    style: ShapeStyle,
    dashed: bool,
    label: Option<&str>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if dashed {
        let drawn = chart.draw_series(DashedLineSeries::new(points, 8, 5, style))?;
        if let Some(label) = label {
            drawn.label(label).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (8, 0)], style)
                    + PathElement::new(vec![(13, 0), (21, 0)], style)
            });
        }
    } else {
        let drawn = chart.draw_series(LineSeries::new(points, style))?;
        if let Some(label) = label {
            drawn
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 21, y)], style));
        }
    }
    Ok(())
}

/// Marks the `events` that fall within `x_range` (seconds since the
/// scenario's start, less `origin_s`: the axis' own units): shades the span
/// each lasts, draws a dashed line at its start and, if `labelled`, writes
/// "link action" beside the line. Everything is clamped to the axis, so
/// nothing spills out of the panel.
fn mark_events<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    events: &[TimelineEvent],
    x_range: Range<f64>,
    origin_s: f64,
    top: f64,
    labelled: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (index, event) in events.iter().enumerate() {
        let at = event.at.as_secs_f64() - origin_s;
        let end = event.duration.map(|d| at + d.as_secs_f64());
        if at > x_range.end || end.unwrap_or(at) < x_range.start {
            continue;
        }
        if let Some(end) = end {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(at.max(x_range.start), 0.0), (end.min(x_range.end), top)],
                EVENT_COLOR.mix(0.12).filled(),
            )))?;
        }
        if at < x_range.start {
            continue;
        }
        chart.draw_series(DashedLineSeries::new(
            [(at, 0.0), (at, top)],
            6,
            4,
            EVENT_COLOR.stroke_width(1),
        ))?;
        if labelled {
            // Above the 100 % line, alternating heights so the names of
            // nearby events do not overlap.
            let height = if index % 2 == 0 { 0.98 } else { 0.915 };
            let label = format!(" {} {}", event.link, event.action);
            chart.draw_series(std::iter::once(Text::new(
                label,
                (at, top * height),
                font(14).color(&EVENT_COLOR),
            )))?;
        }
    }
    Ok(())
}

/// Splits points into runs without gaps, so a line breaks where a value is
/// missing instead of bridging it.
fn runs(points: impl IntoIterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for (x, y) in points {
        match y {
            Some(y) => current.push((x, y)),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

//! The plots of a report, each written as PNG and SVG.
//!
//! - [`timeline`]: per system, delivery and latency over time, events marked.
//! - [`cdf`]: latency CDF, one line per system.
//! - [`link_share`]: share of bytes each link carried, bars per system.
//!
//! Plotters runs headless here (no fontconfig): the text font is
//! circus-lab/assets/DejaVuSans.ttf, compiled in and registered as
//! "sans-serif" before the first plot.

pub mod cdf;
pub mod link_share;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::{DirectionSeries, ReportError, Summary};
use crate::metrics::{SystemMetrics, SystemSeries, TimelineEvent};

/// The only font the plots use, in every text style.
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

/// Colours of the systems, in name order: the Okabe-Ito palette, which stays
/// distinguishable for colour-blind readers; yellow left out (unreadable on white).
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

/// One system as the plots see it.
pub struct PlottedSystem<'a> {
    pub name: &'a str,
    pub metrics: &'a SystemMetrics,
    /// Missing for a system without time series (it is left out of the
    /// time-based plots).
    pub series: Option<&'a SystemSeries>,
    pub color: RGBColor,
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
pub fn write_plots(
    dir: &Path,
    summary: &Summary,
    series: &BTreeMap<String, DirectionSeries>,
    events: &[TimelineEvent],
) -> Result<WrittenPlots, ReportError> {
    register_embedded_font()?;
    let both_ways = series.values().any(|s| s.down.is_some());
    let mut streams: Vec<(String, &SystemMetrics, Option<&SystemSeries>)> = Vec::new();
    for (name, metrics) in &summary.systems {
        let system = series.get(name);
        if !both_ways {
            streams.push((name.clone(), metrics, system.map(|s| &s.up)));
            continue;
        }
        streams.push((format!("{name} up"), metrics, system.map(|s| &s.up)));
        if let Some(down) = system.and_then(|s| s.down.as_ref()) {
            streams.push((format!("{name} down"), metrics, Some(down)));
        }
    }
    let by_stream = plot_input(
        summary,
        events,
        streams
            .iter()
            .map(|(name, metrics, series)| (name.as_str(), *metrics, *series))
            .collect(),
    );
    let by_system = plot_input(
        summary,
        events,
        summary
            .systems
            .iter()
            .map(|(name, metrics)| (name.as_str(), metrics, series.get(name).map(|s| &s.up)))
            .collect(),
    );
    render(dir, &by_stream, &timeline::Timeline)?;
    render(dir, &by_stream, &cdf::LatencyCdf)?;
    render(dir, &by_system, &link_share::LinkShare)?;
    Ok(WrittenPlots {
        names: vec![
            timeline::Timeline::NAME,
            cdf::LatencyCdf::NAME,
            link_share::LinkShare::NAME,
        ],
    })
}

/// The plots' input for `entries` (name, figures, series), coloured in order.
fn plot_input<'a>(
    summary: &'a Summary,
    events: &'a [TimelineEvent],
    entries: Vec<(&'a str, &'a SystemMetrics, Option<&'a SystemSeries>)>,
) -> PlotInput<'a> {
    PlotInput {
        scenario: &summary.scenario,
        duration_s: summary.duration_s,
        systems: entries
            .into_iter()
            .zip(SYSTEM_COLORS.iter().cycle())
            .map(|((name, metrics, series), &color)| PlottedSystem {
                name,
                metrics,
                series,
                color,
            })
            .collect(),
        events,
    }
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

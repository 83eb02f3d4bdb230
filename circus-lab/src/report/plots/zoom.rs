//! Each timeline event up close: ±1 s around it in 10 ms bins, where an
//! outage of 10-50 ms shows that the whole-run timeline's 100 ms bins
//! average into a flat line. One row per event (the first [`MAX_EVENTS`];
//! `report.md` lists the rest), delivery and median latency per direction,
//! every system in the same panel in its own colour.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    Chart, Plot, PlotInput, PlottedSystem, font, mark_events, runs, stream_line, tick, title_font,
};
use crate::metrics::{EventWindow, SystemSeries, TimelineEvent};

pub struct EventZoom;

/// Rows drawn at most: the events the metrics compute windows for by
/// default. A figure with more is too tall to read at a glance.
pub const MAX_EVENTS: usize = crate::metrics::series::EVENT_WINDOWS;

const PANEL_WIDTH: u32 = 470;
const TITLE_HEIGHT: u32 = 60;
const LEGEND_HEIGHT: u32 = 36;
const ROW_HEIGHT: u32 = 290;
/// The delivery axis runs a little past 100 % so a full line stays visible.
const DELIVERY_TOP: f64 = 110.0;

impl Plot for EventZoom {
    const NAME: &'static str = "event_zoom";

    fn size(&self, input: &PlotInput<'_>) -> (u32, u32) {
        let rows = input.events.len().clamp(1, MAX_EVENTS) as u32;
        let columns = 2 * directions(input).len() as u32;
        (
            (columns * PANEL_WIDTH).max(1200),
            TITLE_HEIGHT + LEGEND_HEIGHT + rows * ROW_HEIGHT,
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        input: &PlotInput<'_>,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let (bin, window) = input
            .systems
            .iter()
            .find_map(|s| {
                let series = s.series?;
                let bins = series.windows.first()?.bins.len() as u32;
                Some((series.window_bin, series.window_bin * bins / 2))
            })
            .unwrap_or_default();
        let body = root.titled(
            &format!(
                "{}: ±{} ms around each event ({} ms bins, by send time)",
                input.scenario,
                window.as_millis(),
                bin.as_millis()
            ),
            title_font(24),
        )?;
        let (legend, grid) = body.split_vertically(LEGEND_HEIGHT);
        draw_legend(&legend, input)?;
        let directions = directions(input);
        let rows = input.events.len().min(MAX_EVENTS);
        let panels = grid.split_evenly((rows.max(1), 2 * directions.len()));
        for (index, (event, row)) in input
            .events
            .iter()
            .zip(panels.chunks(2 * directions.len()))
            .enumerate()
        {
            for (&download, pair) in directions.iter().zip(row.chunks(2)) {
                // Drawn last to first, so the scenario's first system lies
                // on top where lines coincide (all at 100 %).
                let streams: Vec<&PlottedSystem<'_>> = input
                    .systems
                    .iter()
                    .rev()
                    .filter(|s| s.download == download && s.series.is_some())
                    .collect();
                let panel = Panel {
                    events: input.events,
                    event,
                    index,
                    direction: direction_name(&directions, download),
                };
                panel.delivery(&pair[0], &streams)?;
                panel.latency(&pair[1], &streams)?;
            }
        }
        Ok(())
    }
}

/// The directions with probes: `false` for the upload, `true` for the
/// download; just the upload if no stream is a download.
fn directions(input: &PlotInput<'_>) -> Vec<bool> {
    if input.systems.iter().any(|s| s.download) {
        vec![false, true]
    } else {
        vec![false]
    }
}

/// "up"/"down" when both are drawn, nothing when only one is.
fn direction_name(directions: &[bool], download: bool) -> &'static str {
    match (directions.len(), download) {
        (1, _) => "",
        (_, false) => ", up",
        (_, true) => ", down",
    }
}

/// One colour per system, and which line is which direction.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    input: &PlotInput<'_>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut x = 20;
    let y = LEGEND_HEIGHT as i32 / 2;
    for system in input.systems.iter().filter(|s| !s.download) {
        let style = system.color.stroke_width(3);
        area.draw(&PathElement::new(vec![(x, y), (x + 28, y)], style))?;
        area.draw(&Text::new(
            system.system.to_string(),
            (x + 36, y - 9),
            font(17),
        ))?;
        x += 60 + 10 * system.system.chars().count() as i32;
    }
    if input.systems.iter().any(|s| s.download) {
        area.draw(&Text::new(
            "solid: upload, dashed: download",
            (x + 20, y - 9),
            font(17).color(&BLACK.mix(0.7)),
        ))?;
    }
    Ok(())
}

/// What the two panels of one event and direction share.
struct Panel<'a> {
    events: &'a [TimelineEvent],
    event: &'a TimelineEvent,
    /// The event's index in the timeline, and so of its window.
    index: usize,
    direction: &'static str,
}

impl Panel<'_> {
    fn at_s(&self) -> f64 {
        self.event.at.as_secs_f64()
    }

    fn window<'s>(&self, series: &'s SystemSeries) -> Option<&'s EventWindow> {
        series.windows.get(self.index)
    }

    /// Half the window's width in seconds, from the bins themselves; 1 s
    /// if no stream has a window.
    fn half_width(&self, streams: &[&PlottedSystem<'_>]) -> f64 {
        streams
            .iter()
            .find_map(|s| {
                let first = self.window(s.series?)?.bins.first()?;
                Some(self.at_s() - first.start_s)
            })
            .unwrap_or(1.0)
    }

    /// A panel's chart: ms from the event across, the event's span shaded.
    fn chart<'a, DB: DrawingBackend>(
        &self,
        area: &'a DrawingArea<DB, Shift>,
        what: &str,
        y_desc: &str,
        top: f64,
        half_s: f64,
    ) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{:.3} s {} {}: {what}{}",
                    self.at_s(),
                    self.event.link,
                    self.event.action,
                    self.direction
                ),
                title_font(15),
            )
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(-half_s..half_s, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("ms from the event")
            .y_desc(y_desc)
            .x_label_formatter(&|x| tick(x * 1e3, f64::INFINITY))
            .y_label_formatter(&|y| tick(*y, f64::INFINITY))
            .x_labels(9)
            .label_style(font(12))
            .axis_desc_style(font(13))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let range = -half_s..half_s;
        mark_events(&mut chart, self.events, range, self.at_s(), top, false)?;
        Ok(chart)
    }

    /// Share delivered per bin, drawn as steps so a one-bin hole shows as
    /// a hole of its own width.
    fn delivery<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        streams: &[&PlottedSystem<'_>],
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let half_s = self.half_width(streams);
        let mut chart = self.chart(area, "delivered", "delivered (%)", DELIVERY_TOP, half_s)?;
        for stream in streams {
            let Some((series, window)) = stream.series.and_then(|s| Some((s, self.window(s)?)))
            else {
                continue;
            };
            let width = series.window_bin.as_secs_f64();
            let steps = window.bins.iter().flat_map(|bin| {
                let start = bin.start_s - self.at_s();
                let percent = bin.delivery_ratio().map(|r| r * 100.0);
                [(start, percent), (start + width, percent)]
            });
            for run in runs(steps) {
                let style = stream.color.stroke_width(2);
                stream_line(&mut chart, run, style, stream.download, None)?;
            }
        }
        Ok(())
    }

    /// Median one-way latency per bin, at the bin's middle; one scale for
    /// all systems of the panel.
    fn latency<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        streams: &[&PlottedSystem<'_>],
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let windows: Vec<(&PlottedSystem<'_>, &SystemSeries, &EventWindow)> = streams
            .iter()
            .filter_map(|&stream| {
                let series = stream.series?;
                Some((stream, series, self.window(series)?))
            })
            .collect();
        let top = windows
            .iter()
            .flat_map(|(_, _, window)| &window.bins)
            .filter_map(|bin| bin.latency_p50_ms)
            .fold(0.0, f64::max);
        let top = (top * 1.15).max(1.0);
        let half_s = self.half_width(streams);
        let mut chart = self.chart(area, "median latency", "latency (ms)", top, half_s)?;
        for (stream, series, window) in windows {
            let middle = series.window_bin.as_secs_f64() / 2.0;
            let points = window
                .bins
                .iter()
                .map(|bin| (bin.start_s - self.at_s() + middle, bin.latency_p50_ms));
            for run in runs(points) {
                let style = stream.color.stroke_width(2);
                stream_line(&mut chart, run, style, stream.download, None)?;
            }
        }
        Ok(())
    }
}

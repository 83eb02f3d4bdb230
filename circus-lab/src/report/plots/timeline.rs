//! Delivery and latency over time: one row per system, delivery on the
//! left, latency on the right, all on the same time axis, with the
//! scenario's events marked in every panel (a dashed line at the event, the
//! span it lasts shaded, its name written in the delivery panel).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    Plot, PlotInput, PlottedSystem, font, mark_events, runs, stream_line, tick, title_font,
};
use crate::metrics::TimelineEvent;

pub struct Timeline;

const WIDTH: u32 = 1600;
const TITLE_HEIGHT: u32 = 60;
const ROW_HEIGHT: u32 = 320;
/// The delivery axis runs past 100 % to leave a band for the event names.
const DELIVERY_TOP: f64 = 120.0;

impl Plot for Timeline {
    const NAME: &'static str = "timeline";

    fn size(&self, input: &PlotInput<'_>) -> (u32, u32) {
        let rows = input
            .systems
            .iter()
            .filter(|s| s.series.is_some())
            .count()
            .max(1) as u32;
        (WIDTH, TITLE_HEIGHT + rows * ROW_HEIGHT)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        input: &PlotInput<'_>,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let bin_ms = input
            .systems
            .iter()
            .find_map(|s| s.series)
            .map_or(0, |series| series.bin.as_millis());
        let body = root.titled(
            &format!(
                "{}: probes delivered and one-way latency over time ({bin_ms} ms bins, by send time)",
                input.scenario
            ),
            title_font(26),
        )?;
        let systems: Vec<&PlottedSystem<'_>> = input
            .systems
            .iter()
            .filter(|s| s.series.is_some())
            .collect();
        let rows = body.split_evenly((systems.len().max(1), 2));
        let end_s = time_axis_end(input);
        let latency_top = latency_axis_top(input);
        for (system, panels) in systems.iter().zip(rows.chunks(2)) {
            draw_delivery(&panels[0], system, end_s, input.events)?;
            draw_latency(&panels[1], system, end_s, latency_top, input.events)?;
        }
        Ok(())
    }
}

/// The run's duration, or the last bin's end if the series run longer.
fn time_axis_end(input: &PlotInput<'_>) -> f64 {
    input
        .systems
        .iter()
        .filter_map(|s| s.series)
        .filter_map(|series| {
            let last = series.bins.last()?;
            Some(last.start_s + series.bin.as_secs_f64())
        })
        .fold(input.duration_s, f64::max)
        .max(1.0)
}

/// One latency scale for all systems, so rows compare at a glance.
fn latency_axis_top(input: &PlotInput<'_>) -> f64 {
    let highest = input
        .systems
        .iter()
        .filter_map(|s| s.series)
        .flat_map(|series| &series.bins)
        .filter_map(|bin| bin.latency_p99_ms)
        .fold(0.0, f64::max);
    (highest * 1.1).max(1.0)
}

fn draw_delivery<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    system: &PlottedSystem<'_>,
    end_s: f64,
    events: &[TimelineEvent],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}: probes delivered", system.name), title_font(20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..end_s, 0.0..DELIVERY_TOP)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("delivered (%)")
        .x_label_formatter(&|x| tick(*x, f64::INFINITY))
        .y_label_formatter(&|y| tick(*y, 100.0))
        .label_style(font(15))
        .axis_desc_style(font(16))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    mark_events(&mut chart, events, 0.0..end_s, 0.0, DELIVERY_TOP, true)?;
    let Some(series) = system.series else {
        return Ok(());
    };
    let points = series
        .bins
        .iter()
        .map(|bin| (bin.start_s, bin.delivery_ratio().map(|r| r * 100.0)));
    for run in runs(points) {
        let style = system.color.stroke_width(2);
        stream_line(&mut chart, run, style, system.download, None)?;
    }
    Ok(())
}

fn draw_latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    system: &PlottedSystem<'_>,
    end_s: f64,
    top_ms: f64,
    events: &[TimelineEvent],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}: one-way latency", system.name), title_font(20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..end_s, 0.0..top_ms)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| tick(*x, f64::INFINITY))
        .y_label_formatter(&|y| tick(*y, f64::INFINITY))
        .label_style(font(15))
        .axis_desc_style(font(16))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    mark_events(&mut chart, events, 0.0..end_s, 0.0, top_ms, false)?;
    let Some(series) = system.series else {
        return Ok(());
    };
    let lines = [
        (
            "99th percentile",
            system.color.mix(0.45).stroke_width(1),
            true,
        ),
        ("median", system.color.stroke_width(2), false),
    ];
    for (label, style, is_p99) in lines {
        let points = series.bins.iter().map(|bin| {
            let value = if is_p99 {
                bin.latency_p99_ms
            } else {
                bin.latency_p50_ms
            };
            (bin.start_s, value)
        });
        for (index, run) in runs(points).into_iter().enumerate() {
            let label = (index == 0).then_some(label);
            stream_line(&mut chart, run, style, system.download, label)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(font(14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

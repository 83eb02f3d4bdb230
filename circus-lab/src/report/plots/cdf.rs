//! Latency CDF: for each system, the share of the probes *sent* that arrived
//! within a given one-way latency. A lost probe never arrives (an infinite
//! latency), so each curve ends at its system's delivered share: a system
//! that lost 20 % tops out at 80 % and cannot look best for being fast with
//! what it did deliver. The axis and the legend say so.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Plot, PlotInput, font, stream_line, tick, title_font};

pub struct LatencyCdf;

/// The x axis ends a little past the 99.9th percentile of the delivered
/// probes of the slowest system: the far tail of one outlier would squash
/// every curve to the left.
const AXIS_QUANTILE: f64 = 0.999;

impl Plot for LatencyCdf {
    const NAME: &'static str = "latency_cdf";

    fn size(&self, _input: &PlotInput<'_>) -> (u32, u32) {
        (1200, 750)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        input: &PlotInput<'_>,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let right_ms = input
            .systems
            .iter()
            .filter_map(|s| s.series)
            .filter_map(|series| {
                let &(_, delivered) = series.latency_cdf.last()?;
                series
                    .latency_cdf
                    .iter()
                    .find(|(_, share)| *share >= AXIS_QUANTILE * delivered)
                    .map(|(ms, _)| *ms)
            })
            .fold(0.0, f64::max);
        let right_ms = (right_ms * 1.1).max(1.0);
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{}: one-way latency of all probes sent (CDF, lost probes never arrive)",
                    input.scenario
                ),
                title_font(26),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..right_ms, 0.0..100.0)?;
        chart
            .configure_mesh()
            .x_desc("one-way latency (ms)")
            .y_desc("probes sent that arrived within (%); lost = never")
            .x_label_formatter(&|x| tick(*x, f64::INFINITY))
            .y_label_formatter(&|y| tick(*y, f64::INFINITY))
            .label_style(font(16))
            .axis_desc_style(font(18))
            .light_line_style(BLACK.mix(0.05))
            .draw()?;
        for system in &input.systems {
            let Some(series) = system.series else {
                continue;
            };
            let points: Vec<(f64, f64)> = series
                .latency_cdf
                .iter()
                .map(|&(ms, share)| (ms.min(right_ms), share * 100.0))
                .collect();
            let delivered = series.latency_cdf.last().map_or(0.0, |&(_, share)| share);
            let label = format!(
                "{}: ends at {:.2} % ({:.2} % lost)",
                system.name,
                delivered * 100.0,
                (1.0 - delivered) * 100.0
            );
            let style = system.color.stroke_width(3);
            stream_line(&mut chart, points, style, system.download, Some(&label))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(font(18))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    }
}

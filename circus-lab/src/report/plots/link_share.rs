//! Per-link traffic share: for each system, one bar per link with the share
//! of all bytes that link carried.

use std::collections::BTreeSet;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{LINK_COLORS, Plot, PlotInput, font, tick, title_font};

pub struct LinkShare;

/// The share axis runs past 100 % to leave room for the legend.
const SHARE_TOP: f64 = 118.0;
/// Share of a system's slot the bars of its links fill together.
const GROUP_WIDTH: f64 = 0.8;

impl Plot for LinkShare {
    const NAME: &'static str = "link_share";

    fn size(&self, input: &PlotInput<'_>) -> (u32, u32) {
        (1200.max(260 * input.systems.len() as u32), 700)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        input: &PlotInput<'_>,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let links: BTreeSet<&str> = input
            .systems
            .iter()
            .flat_map(|s| s.metrics.link_share.keys().map(String::as_str))
            .collect();
        let systems = input.systems.len().max(1);
        // One slot [i, i + 1) per system. Asking for 2n + 1 labels makes
        // plotters place them every 0.5, so the centres i + 0.5 get a label:
        // the system's name (the labels on slot borders stay empty).
        let slots = 0.0..systems as f64;
        let names: Vec<&str> = input.systems.iter().map(|s| s.name.as_str()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{}: share of bytes carried per link", input.scenario),
                title_font(26),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(slots, 0.0..SHARE_TOP)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("system")
            .y_desc("share of bytes (%)")
            .y_label_formatter(&|y| tick(*y, 100.0))
            .x_labels(2 * systems + 1)
            .x_label_formatter(&|x| {
                let centre = (x - x.floor() - 0.5).abs() < 0.01;
                match names.get(x.floor() as usize) {
                    Some(name) if centre => name.to_string(),
                    _ => String::new(),
                }
            })
            .label_style(font(17))
            .axis_desc_style(font(18))
            .light_line_style(BLACK.mix(0.05))
            .draw()?;
        let bar_width = GROUP_WIDTH / links.len().max(1) as f64;
        for (index, (link, &color)) in links.iter().zip(LINK_COLORS.iter().cycle()).enumerate() {
            let left_of =
                |slot: usize| slot as f64 + (1.0 - GROUP_WIDTH) / 2.0 + index as f64 * bar_width;
            let bars: Vec<(f64, f64)> = input
                .systems
                .iter()
                .enumerate()
                .filter_map(|(slot, s)| {
                    s.metrics
                        .link_share
                        .get(*link)
                        .map(|share| (left_of(slot), share * 100.0))
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|&(left, percent)| {
                    Rectangle::new(
                        [(left, 0.0), (left + bar_width * 0.92, percent)],
                        color.filled(),
                    )
                }))?
                .label(*link)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 7), (x + 16, y + 7)], color.filled())
                });
            chart.draw_series(bars.iter().map(|&(left, percent)| {
                Text::new(
                    format!("{percent:.1} %"),
                    (left + bar_width * 0.1, percent + 4.0),
                    font(15),
                )
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(font(18))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    }
}

//! Pictures of a run for the book: each scenario's latency distribution,
//! and the throughput of each scenario against the floor. SVG, drawn with
//! plotters; text is left to the viewer's fonts.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::load::ScenarioReport;
use crate::run::RunReport;

/// The latency quantiles a report keeps and the plot draws.
pub const QUANTILES: &[f64] = &[0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0];

const WIDTH: u32 = 760;
const HEIGHT: u32 = 420;

/// Writes `latency-<profile>.svg` and `throughput-<profile>.svg` into `dir`.
pub fn write(report: &RunReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let profile = report.profile.as_str();
    let latency = dir.join(format!("latency-{profile}.svg"));
    let throughput = dir.join(format!("throughput-{profile}.svg"));
    latency_plot(&report.scenarios, profile, &latency)?;
    throughput_plot(report, profile, &throughput)?;
    Ok(vec![latency, throughput])
}

/// Latency (log scale) at each quantile, one line per scenario.
fn latency_plot(scenarios: &[ScenarioReport], profile: &str, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let highest = scenarios
        .iter()
        .flat_map(|s| s.latency_ms.iter().map(|(_, ms)| *ms))
        .fold(1.0_f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency by quantile ({profile}, 16 in flight)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0..QUANTILES.len() - 1, (0.1_f64..highest * 1.5).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_labels(QUANTILES.len())
        .x_label_formatter(&|i| quantile_label(QUANTILES.get(*i).copied().unwrap_or(1.0)))
        .x_desc("quantile")
        .y_desc("ms")
        .draw()
        .map_err(plot_error)?;
    for (index, scenario) in scenarios.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let points: Vec<(usize, f64)> = scenario
            .latency_ms
            .iter()
            .filter_map(|(q, ms)| QUANTILES.iter().position(|x| x == q).map(|i| (i, *ms)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(scenario.scenario.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Requests per second of each scenario as a share of the floor's
/// transactions per second (the floor's mean, before and after the check).
fn throughput_plot(report: &RunReport, profile: &str, path: &Path) -> anyhow::Result<()> {
    let floor = match (&report.floor_before, &report.floor) {
        (Some(before), Some(after)) => {
            (before.transactions_per_second + after.transactions_per_second) / 2.0
        }
        (None, Some(only)) | (Some(only), None) => only.transactions_per_second,
        (None, None) => anyhow::bail!("no floor was measured: nothing to compare with"),
    };
    let bars: Vec<(String, f64)> = report
        .scenarios
        .iter()
        .map(|s| (s.scenario.name().to_owned(), s.per_second / floor))
        .collect();
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Requests per second against the floor ({profile}, floor {floor:.0} tps)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d((0..bars.len()).into_segmented(), 0.0_f64..1.1)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len())
        .x_label_formatter(&|segment| match segment {
            SegmentValue::CenterOf(i) => bars
                .get(*i)
                .map(|(name, _)| name.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("× floor")
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, ratio))| {
            let style = Palette99::pick(i).filled();
            Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *ratio),
                ],
                style,
            )
        }))
        .map_err(plot_error)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![
                (SegmentValue::Exact(0), 1.0),
                (SegmentValue::Exact(bars.len()), 1.0),
            ],
            BLACK.stroke_width(1),
        )))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn quantile_label(q: f64) -> String {
    if q >= 1.0 {
        "max".to_owned()
    } else {
        format!("p{}", (q * 1000.0).round() / 10.0)
    }
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {error}")
}

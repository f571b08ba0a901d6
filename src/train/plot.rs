//! Training curves as an SVG file (plotters' SVG backend: no system
//! libraries, no fonts to load): loss on the left, accuracy on the right,
//! training intervals as lines and validation after each epoch as points.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::MetricRow;

/// Draws `rows` (the fit loop's metric log) into `path`.
pub(crate) fn write_svg(path: &Path, rows: &[MetricRow], title: &str) -> Result<()> {
    let fail = |e: String| Error::Data {
        file: path.display().to_string(),
        line: None,
        message: format!("cannot draw the training plot: {e}"),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| fail(e.to_string()))?;
        let (left, right) = root.split_horizontally(550);
        // Loss falls and accuracy rises: keep each legend out of its curves' way.
        panel(&left, rows, "loss", SeriesLabelPosition::UpperRight, |r| r.loss).map_err(fail)?;
        panel(&right, rows, "accuracy", SeriesLabelPosition::LowerRight, |r| r.accuracy).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    // Drawn in memory and swapped in whole: a run killed while plotting
    // leaves the previous plot, not half a file.
    crate::checkpoint::write_durably(path, svg.as_bytes())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    rows: &[MetricRow],
    name: &str,
    legend: SeriesLabelPosition,
    value: impl Fn(&MetricRow) -> f32,
) -> std::result::Result<(), String> {
    let series = |kind: &str| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.kind == kind && value(r).is_finite())
            .map(|r| (r.progress, f64::from(value(r))))
            .collect()
    };
    let (train, valid) = (series("train"), series("valid"));
    let all = train.iter().chain(&valid);
    let x_max = all.clone().map(|p| p.0).fold(1.0f64, f64::max);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(name, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("epoch").y_desc(name).draw().map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(train, &BLUE))
        .map_err(|e| e.to_string())?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    chart
        .draw_series(LineSeries::new(valid.clone(), &RED))
        .map_err(|e| e.to_string())?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart.draw_series(valid.iter().map(|&p| Circle::new(p, 4, RED.filled()))).map_err(|e| e.to_string())?;
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

//! HDR-style percentile plots as SVG: latency (log scale) against the
//! percentile, spread as `1 / (1 - p)` on a log scale so 90 %, 99 %,
//! 99.9 % and 99.99 % are equally far apart; one line per transport.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::hist::percentile_curve;

/// One line of a plot.
#[derive(Debug)]
pub struct Series<'a> {
    /// The legend.
    pub label: String,
    /// Its latency histogram (ns).
    pub histogram: &'a Histogram<u64>,
}

/// The x coordinate of a percentile: `1 / (1 - p)`, capped at 1e6
/// (99.9999 %).
pub fn x_of_percentile(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-6);
    1.0 / rest
}

/// The label of an x coordinate: "0%", "90%", "99%", "99.9%", ...
pub fn percentile_label(x: f64) -> String {
    let percentile = (1.0 - 1.0 / x.max(1.0)) * 100.0;
    let text = format!("{percentile:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The points of a series: `(x, latency us)`.
pub fn points(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    percentile_curve(histogram, 5)
        .into_iter()
        .map(|(p, ns)| (x_of_percentile(p), (ns as f64 / 1000.0).max(0.01)))
        .collect()
}

/// Draws `series` into an SVG at `path` titled `title`. Series without
/// samples are left out; with none at all the plot is empty but valid.
pub fn percentile_svg(path: &Path, title: &str, series: &[Series<'_>]) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let lines: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| (s.label.clone(), points(s.histogram)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let x_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(100.0f64, f64::max)
        .min(1e6);
    let y_min = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(f64::INFINITY, f64::min);
    let y_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0f64, f64::max);
    let (y_min, y_max) = if lines.is_empty() {
        (0.1, 100.0)
    } else {
        ((y_min / 2.0).max(0.01), y_max * 2.0)
    };

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0f64..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("one-way latency (us)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(|e| fail(&e))?;
    for (i, (label, line)) in lines.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::{new_histogram, record};

    #[test]
    fn percentile_axis_labels() {
        assert_eq!(x_of_percentile(0.0), 1.0);
        assert!((x_of_percentile(99.0) - 100.0).abs() < 1e-6);
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(x_of_percentile(100.0), 1e6);
    }

    #[test]
    fn writes_an_svg_with_one_line_per_series_and_the_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let mut fast = new_histogram();
        let mut slow = new_histogram();
        for i in 1..=10_000 {
            record(&mut fast, 1000 + i);
            record(&mut slow, 10_000 + 10 * i);
        }
        let empty = new_histogram();
        let series = [
            Series {
                label: "raw iceoryx2".into(),
                histogram: &fast,
            },
            Series {
                label: "Unix datagram socket".into(),
                histogram: &slow,
            },
            Series {
                label: "nothing".into(),
                histogram: &empty,
            },
        ];
        percentile_svg(&path, "paced", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("raw iceoryx2") && svg.contains("Unix datagram socket"));
        assert!(!svg.contains(">nothing<"));
        assert!(svg.matches("<polyline").count() >= 2);
    }

    #[test]
    fn an_empty_plot_is_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        percentile_svg(&path, "nothing ran", &[]).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("nothing ran"));
    }
}

//! `server-cpu`'s results as an SVG chart (plotters' SVG backend): for each workload, each
//! server's CPU per operation relative to tonic's (lower is better), and the same for
//! peak RSS; the spread over rounds as a whisker on each bar.

use plotters::prelude::*;

/// One server's bars: its name, and per group (workload, then peak RSS) its median and
/// min–max relative to tonic's median.
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) bars: Vec<Option<(f64, f64, f64)>>,
}

/// Writes the chart to `path`: `groups` are the labels under the bars, `title` the
/// caption, `footer` the line under the axis (how to read it, where it ran).
pub(crate) fn write(
    path: &std::path::Path,
    title: &str,
    footer: &str,
    groups: &[String],
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let top = series
        .iter()
        .flat_map(|s| s.bars.iter().flatten().map(|&(_, _, hi)| hi))
        .fold(1.0f64, f64::max)
        .min(4.0)
        * 1.1;
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..groups.len() as f64 - 0.5, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                groups.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("relative to tonic (lower is better)")
        .x_desc(footer)
        .label_style(("sans-serif", 13))
        .draw()?;
    // tonic's level.
    chart.draw_series(LineSeries::new(
        [(-0.5, 1.0), (groups.len() as f64 - 0.5, 1.0)],
        BLACK.stroke_width(1),
    ))?;
    let width = 0.8 / series.len().max(1) as f64;
    for (s, one) in series.iter().enumerate() {
        let color = Palette99::pick(s).to_rgba();
        let x = |g: usize| g as f64 - 0.4 + s as f64 * width;
        chart
            .draw_series(one.bars.iter().enumerate().filter_map(|(g, bar)| {
                let (median, _, _) = (*bar)?;
                Some(Rectangle::new(
                    [(x(g), 0.0), (x(g) + width * 0.9, median.min(top))],
                    color.filled(),
                ))
            }))?
            .label(one.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(one.bars.iter().enumerate().filter_map(|(g, bar)| {
            let (_, lo, hi) = (*bar)?;
            let middle = x(g) + width * 0.45;
            Some(PathElement::new(
                vec![(middle, lo.min(top)), (middle, hi.min(top))],
                BLACK.stroke_width(1),
            ))
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}

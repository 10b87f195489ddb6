//! The loss pane: the detector's loss components (DAGMM: reconstruction, energy,
//! covariance penalty, total; EGBAD: D loss, G/E loss, D's accuracy on real and generated
//! pairs) as small multiples — each series on its own y-axis, since they differ by orders
//! of magnitude — with the latest value and range in each header. Series toggle with 1–4,
//! `l` switches log scale.

use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::{before_history, block, sparkline, Look};
use crate::ui::app::App;
use crate::ui::histogram::symlog;
use crate::ui::text::number;

fn value(losses: &[f64], series: usize) -> f64 {
    losses.get(series).copied().unwrap_or(f64::NAN)
}

/// Draws the loss pane into `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let run = app.viewed_run();
    let scale = if app.chart.log_scale { " · log" } else { "" };
    let p = &run.progress;
    let member = if p.members > 1 {
        format!(" · model {}/{}", p.member.max(1), p.members)
    } else {
        String::new()
    };
    let title = format!(" {} loss per epoch{member}{scale} ", run.detector);
    let outer = block(title, t)
        .title_bottom(Line::from(Span::styled(" 1-4 series · l log ", t.muted)).right_aligned());
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let names = run.detector.loss_names();
    let shown: Vec<usize> = (0..names.len().min(4))
        .filter(|&i| app.chart.shown[i])
        .collect();
    if shown.is_empty() {
        frame.render_widget(
            Paragraph::new("all series hidden: press 1-4").style(t.muted),
            inner,
        );
        return;
    }
    if run.loss_history.is_empty() && run.loss_live.is_none() {
        before_history(frame, inner, app, t, "waiting for the first steps…");
        return;
    }
    let rows_each = (inner.height as usize / shown.len()).max(1);
    for (k, &series) in shown.iter().enumerate() {
        let y = inner.y + (k * rows_each) as u16;
        if y >= inner.y + inner.height {
            break;
        }
        let height = (rows_each as u16).min(inner.y + inner.height - y);
        draw_series(
            frame,
            Rect {
                x: inner.x,
                y,
                width: inner.width,
                height,
            },
            app,
            look,
            series,
        );
    }
}

fn draw_series(frame: &mut Frame, area: Rect, app: &App, look: &Look, series: usize) {
    let t = &look.theme;
    let run = app.viewed_run();
    let style = t.series[series];
    // (epoch position, value): finished epochs, then the running mean of the current one.
    let mut points: Vec<(f64, f64)> = run
        .loss_history
        .iter()
        .enumerate()
        .map(|(i, l)| ((i + 1) as f64, value(l, series)))
        .collect();
    if let Some(live) = &run.loss_live {
        let p = &run.progress;
        let within = p.step as f64 / p.steps_per_epoch.max(1) as f64;
        points.push((run.loss_history.len() as f64 + within, value(live, series)));
    }
    let latest = points.last().map_or(f64::NAN, |p| p.1);
    let finite: Vec<f64> = points
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let header = Line::from(vec![
        Span::styled(format!("{:<10}", run.detector.loss_names()[series]), style),
        Span::styled(format!("{:>10}", number(latest, 4)), style),
        Span::styled(
            if finite.len() > 1 {
                format!("  {} … {}", number(lo, 3), number(hi, 3))
            } else {
                String::new()
            },
            t.muted,
        ),
    ]);
    let transform = |v: f64| if app.chart.log_scale { symlog(v) } else { v };
    if area.height < 2 {
        let label_width = 20u16.min(area.width);
        frame.render_widget(
            Paragraph::new(header),
            Rect {
                width: label_width,
                ..area
            },
        );
        let values: Vec<f64> = points.iter().map(|p| transform(p.1)).collect();
        let spark_width = area.width.saturating_sub(label_width + 1) as usize;
        let spark = sparkline(&values, spark_width, transform(lo), transform(hi));
        frame.render_widget(
            Paragraph::new(Span::styled(spark, style)),
            Rect {
                x: area.x + label_width + 1,
                width: area.width - label_width.min(area.width - 1) - 1,
                ..area
            },
        );
        return;
    }
    frame.render_widget(Paragraph::new(header), Rect { height: 1, ..area });
    let plot = Rect {
        y: area.y + 1,
        height: area.height - 1,
        ..area
    };
    let data = downsample(&points, plot.width as usize * 2)
        .into_iter()
        .map(|(x, v)| (x, transform(v)))
        .collect::<Vec<_>>();
    let (y_lo, y_hi) = padded(transform(lo), transform(hi));
    let x_hi = points.last().map_or(1.0, |p| p.0).max(1.0);
    let marker = if look.braille {
        Marker::Braille
    } else {
        Marker::HalfBlock
    };
    let dataset = Dataset::default()
        .data(&data)
        .marker(marker)
        .graph_type(GraphType::Line)
        .style(style);
    let chart = Chart::new(vec![dataset])
        .x_axis(Axis::default().bounds([points.first().map_or(0.0, |p| p.0.min(1.0)), x_hi]))
        .y_axis(Axis::default().bounds([y_lo, y_hi]));
    frame.render_widget(chart, plot);
}

/// At most `max` points, evenly spaced, always keeping the last.
fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max.max(2) {
        return points.to_vec();
    }
    let step = points.len() as f64 / max as f64;
    let mut out: Vec<(f64, f64)> = (0..max)
        .map(|i| points[(i as f64 * step) as usize])
        .collect();
    if out.last() != points.last() {
        out.push(*points.last().expect("non-empty"));
    }
    out
}

/// Bounds with a little room, and a non-empty range for flat series.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(hi.abs().max(1e-12) * 1e-3);
    (lo - span * 0.05, hi + span * 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_the_last_point_and_the_bound() {
        let points: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, i as f64)).collect();
        let d = downsample(&points, 100);
        assert!(d.len() <= 101);
        assert_eq!(d.last(), Some(&(999.0, 999.0)));
        assert_eq!(downsample(&points[..5], 100).len(), 5);
        assert!(symlog(-9.0) < 0.0 && (symlog(9.0) - 1.0).abs() < 1e-12);
    }
}

//! The auxiliary pane of detectors with a per-epoch series (DAGMM's mixture weights): one
//! bar per value with its latest level, and a sparkline of how it moved over the epochs.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{bar, before_history, block, sparkline, Look};
use crate::ui::app::App;

/// Draws the mixture pane into `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let run = app.viewed_run();
    let title = run.detector.aux_title().unwrap_or("per epoch");
    let outer = block(format!(" {title} "), t);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let Some(latest) = run.aux_history.last() else {
        before_history(frame, inner, app, t, "after the first epoch…");
        return;
    };
    let k = latest.len();
    let rows = inner.height as usize;
    let shown = if k > rows { rows.saturating_sub(1) } else { k };
    let w = inner.width as usize;
    // "k12 " + bar + " 0.583 " + history
    let label_w = 2 + k.to_string().len() + 1;
    let history_w = (w / 3).min(run.aux_history.len()).max(1);
    let bar_w = w.saturating_sub(label_w + 7 + history_w + 1).max(1);
    let mut lines = Vec::with_capacity(rows);
    for (c, &phi) in latest.iter().enumerate().take(shown) {
        let style = t.series[c % t.series.len()];
        let history: Vec<f64> = run
            .aux_history
            .iter()
            .map(|p| p.get(c).copied().unwrap_or(0.0))
            .collect();
        // Scaled to the component's own range (at least 0.05 wide, so noise stays flat).
        let lo = history.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = history
            .iter()
            .cloned()
            .fold(0.0f64, f64::max)
            .max(lo + 0.05);
        lines.push(Line::from(vec![
            Span::styled(format!("{:<label_w$}", format!("k{}", c + 1)), t.text),
            Span::styled(format!("{:<bar_w$}", bar(phi, bar_w)), style),
            Span::styled(format!(" {phi:>5.3} "), t.text),
            Span::styled(sparkline(&history, history_w, lo, hi), style),
        ]));
    }
    if shown < k {
        lines.push(Line::from(Span::styled(
            format!("… {} more components", k - shown),
            t.muted,
        )));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

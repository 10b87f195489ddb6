//! The score-distribution pane, for detectors without a per-epoch auxiliary series
//! (EGBAD): a histogram of the ensemble scores on a symmetric log axis, the flagged share
//! drawn in the flagged colour, so moving the threshold (+/-) shows where it cuts.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{before_history, block, Look};
use crate::ui::app::App;
use crate::ui::text::number;

/// Draws the distribution pane into `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let detector = app.viewed_run().detector;
    let title = if app.runs.len() > 1 {
        format!(" {detector} score distribution · flagged ")
    } else {
        " Score distribution · flagged ".to_string()
    };
    let outer = block(title, t);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let viewed = app.table.scorings.iter().find(|s| s.detector() == detector);
    let Some(shown) = viewed else {
        before_history(frame, inner, app, t, "after the first scoring…");
        return;
    };
    let histogram = &shown.histogram;
    let rows = inner.height.saturating_sub(1) as usize;
    let columns = histogram.columns(inner.width as usize, app.table.flagged_count());
    if rows == 0 || columns.is_empty() {
        return;
    }
    // Bar heights on a log scale: the tail holds a handful of rows among thousands.
    let height = |c: u32| (1.0 + c as f64).ln();
    let top = columns
        .iter()
        .map(|&(c, _)| height(c))
        .fold(0.0, f64::max)
        .max(1e-9);
    const EIGHTHS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let mut lines = Vec::with_capacity(rows + 1);
    for r in (0..rows).rev() {
        let spans: Vec<Span> = columns
            .iter()
            .map(|&(c, f)| {
                let level = height(c) / top * rows as f64 - r as f64;
                let glyph = EIGHTHS[(level.clamp(0.0, 1.0) * 8.0).round() as usize];
                let style = if f * 2 > c { t.flagged } else { t.muted };
                Span::styled(glyph.to_string(), style)
            })
            .collect();
        lines.push(Line::from(spans));
    }
    let unlog = |x: f64| x.signum() * (10f64.powf(x.abs()) - 1.0);
    let (lo, hi) = (
        number(unlog(histogram.lo), 3),
        number(unlog(histogram.hi), 3),
    );
    let gap = (inner.width as usize).saturating_sub(lo.len() + hi.len());
    lines.push(Line::styled(format!("{lo}{:gap$}{hi}", ""), t.muted));
    frame.render_widget(Paragraph::new(lines), inner);
}

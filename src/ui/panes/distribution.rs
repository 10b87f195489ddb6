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

/// Bins computed once per scoring; columns merge them to the pane's width.
pub const FINE_BINS: usize = 256;

/// Scores counted into [`FINE_BINS`] equal bins over their symmetric-log range.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// symlog of the lowest and highest score.
    pub lo: f64,
    pub hi: f64,
    /// Rows per bin, lowest scores first.
    pub counts: Vec<u32>,
}

/// Symmetric log: keeps the sign, so the axis shows scores below the median too.
fn symlog(v: f64) -> f64 {
    v.signum() * (1.0 + v.abs()).log10()
}

impl Histogram {
    /// Counts `scores` (non-finite ones left out).
    pub fn of(scores: &[f64]) -> Self {
        let xs = scores.iter().filter(|v| v.is_finite()).map(|&v| symlog(v));
        let (lo, hi) = xs
            .clone()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if lo > hi {
            return Self::default();
        }
        let span = (hi - lo).max(1e-12);
        let mut counts = vec![0u32; FINE_BINS];
        for x in xs {
            let bin = (((x - lo) / span) * FINE_BINS as f64) as usize;
            counts[bin.min(FINE_BINS - 1)] += 1;
        }
        Self { lo, hi, counts }
    }

    /// `columns` merged bins as (rows, of which flagged), given that the `flagged`
    /// highest-scoring rows are flagged.
    pub fn columns(&self, columns: usize, flagged: usize) -> Vec<(u32, u32)> {
        if self.counts.is_empty() || columns == 0 {
            return Vec::new();
        }
        let mut merged = vec![0u32; columns];
        for (i, &c) in self.counts.iter().enumerate() {
            merged[i * columns / self.counts.len()] += c;
        }
        let mut left = flagged as u64;
        let mut out = vec![(0, 0); columns];
        for (i, &c) in merged.iter().enumerate().rev() {
            let f = (c as u64).min(left);
            left -= f;
            out[i] = (c, f as u32);
        }
        out
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_split_the_flagged_rows_from_the_top() {
        let scores: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let h = Histogram::of(&scores);
        assert_eq!(h.counts.iter().sum::<u32>(), 100);
        let cols = h.columns(4, 30);
        assert_eq!(cols.iter().map(|c| c.0).sum::<u32>(), 100);
        assert_eq!(cols.iter().map(|c| c.1).sum::<u32>(), 30);
        // Flagged rows fill the highest column first.
        assert_eq!(cols[3].1, cols[3].0.min(30));
        assert_eq!(cols[0].1, 0);
        assert!(Histogram::of(&[f64::NAN]).columns(4, 1).is_empty());
    }
}

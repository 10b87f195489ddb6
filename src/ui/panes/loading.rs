//! What the table area shows before the first scores: the loading gauge (rows read, MB/s),
//! then a note saying when scores will come.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Gauge, Paragraph, Wrap};
use ratatui::Frame;

use super::{block, Look};
use crate::data::LoadProgress;
use crate::ui::app::{App, Phase};
use crate::ui::text::thousands;

/// Draws the placeholder for the ranked table into `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let outer = block(" Ranked by score ", t);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let [text_area, gauge_area, _] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(inner);
    if let Phase::Failed(e) = &app.phase {
        let text = vec![
            Line::styled("Training stopped with an error:", t.error),
            Line::styled(e.clone(), t.text),
        ];
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), inner);
        return;
    }
    if app.data.is_none() {
        let (progress, started) = app.load.unwrap_or((LoadProgress::default(), app.now));
        let secs = app.now.saturating_duration_since(started).as_secs_f64();
        let speed = if secs >= 0.2 {
            format!(" · {:.1} MB/s", progress.bytes_read as f64 / 1e6 / secs)
        } else {
            String::new()
        };
        let pass = match progress.pass {
            2 => "pass 2/2: building the table",
            _ => "pass 1/2: column types",
        };
        let text = vec![
            Line::styled(format!("Reading {} — {pass}", app.config.file), t.text),
            Line::styled(
                format!(
                    "{} rows · {:.1} of {:.1} MB{speed}",
                    thousands(progress.records as usize),
                    progress.bytes_read as f64 / 1e6,
                    progress.file_bytes as f64 / 1e6,
                ),
                t.muted,
            ),
        ];
        frame.render_widget(Paragraph::new(text), text_area);
        frame.render_widget(
            Gauge::default()
                .ratio(progress.fraction())
                .gauge_style(t.gauge)
                .label(format!("{:.0} %", progress.fraction() * 100.0)),
            gauge_area,
        );
        return;
    }
    let every = app.progress().rescore_every.unwrap_or(1);
    let text = vec![
        Line::styled(format!("Every row is scored after epoch {every}."), t.text),
        Line::styled(
            format!("Rescoring every {every} epoch(s) and at the end · r rescores now"),
            t.muted,
        ),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), inner);
}

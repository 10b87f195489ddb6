//! Drawing: one file per pane, each a pure function of the [`App`] state. The layout
//! adapts from 80×24 up; below the minimum it says so instead of drawing garbage.

pub mod distribution;
pub mod footer;
pub mod help;
pub mod inspect;
pub mod loading;
pub mod loss;
pub mod mixture;
pub mod status;
pub mod table;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Mode};
use super::theme::Theme;
use crate::text::is_unsafe;

/// Smallest terminal the layout fits.
pub const MIN_WIDTH: u16 = 60;
/// Smallest terminal height the layout fits.
pub const MIN_HEIGHT: u16 = 16;

/// How the panes look: colours, and whether charts may use braille (fonts over SSH may lack
/// it; half blocks are everywhere).
#[derive(Debug, Clone, PartialEq)]
pub struct Look {
    pub theme: Theme,
    pub braille: bool,
}

/// Draws the whole workbench.
pub fn draw(frame: &mut Frame, app: &App, look: &Look) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small: {}×{} (need {MIN_WIDTH}×{MIN_HEIGHT}) · q quits",
            area.width, area.height
        );
        // An open prompt or question keeps the bottom line: `q` must not ask unseen.
        let asking = matches!(app.mode, Mode::Prompt(_) | Mode::Confirm(_)) && area.height > 1;
        // Up to three lines for the question, so a narrow terminal shows all of it.
        let question_rows = if asking {
            (area.height / 2).clamp(1, 3)
        } else {
            0
        };
        let [text_area, footer_area] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(question_rows)]).areas(area);
        frame.render_widget(
            Paragraph::new(text)
                .style(look.theme.warning)
                .wrap(Wrap { trim: true }),
            text_area,
        );
        if asking {
            footer::draw(frame, footer_area, app, look);
        }
        return;
    }
    let top_height = (area.height / 3).clamp(7, 16);
    let [status_area, top, main, footer_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(top_height),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(area);
    let [loss_area, mixture_area] =
        Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(top);
    status::draw(frame, status_area, app, look);
    loss::draw(frame, loss_area, app, look);
    // The detector's auxiliary series where it has one (DAGMM: φ̂), else the score
    // distribution.
    if app.viewed_run().detector.aux_title().is_some() {
        mixture::draw(frame, mixture_area, app, look);
    } else {
        distribution::draw(frame, mixture_area, app, look);
    }
    if app.table.shown().is_some() {
        table::draw(frame, main, app, look);
    } else {
        loading::draw(frame, main, app, look);
    }
    footer::draw(frame, footer_area, app, look);
    // Overlays cover everything between the status line and the footer.
    let overlay = Rect {
        y: area.y + 1,
        height: area.height - 2,
        ..area
    };
    match app.mode {
        Mode::Inspect => inspect::draw(frame, overlay, app, look),
        Mode::Help { .. } => help::draw(frame, overlay, app, look),
        _ => {}
    }
}

/// Last line of defence, run on every frame before it reaches the terminal: a cell still
/// holding a control, bidi or zero-width character (a pane that forgot to escape its text)
/// shows `�` instead. Panes escape text themselves, visibly; this only keeps a slip from
/// ever driving the terminal.
pub fn guard(buffer: &mut Buffer) {
    for cell in &mut buffer.content {
        if cell.symbol().chars().any(is_unsafe) {
            cell.set_symbol("\u{fffd}");
        }
    }
}

/// A bordered block with a title in the theme's colours.
pub fn block<'a>(title: impl Into<Line<'a>>, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .border_style(theme.border)
        .title(title.into().style(theme.title))
}

/// Clears `area` and draws an overlay block there, returning the inner area.
pub fn overlay<'a>(
    frame: &mut Frame,
    area: Rect,
    title: impl Into<Line<'a>>,
    theme: &Theme,
) -> Rect {
    frame.render_widget(Clear, area);
    let block = block(title, theme).style(Style::default());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}

/// What a history pane shows before its first point: `waiting` while a model trains, or
/// that nothing trains when the model came from a checkpoint.
pub fn before_history(frame: &mut Frame, area: Rect, app: &App, theme: &Theme, waiting: &str) {
    let text = if app.config.training {
        waiting
    } else {
        "model from a checkpoint: no training in this session"
    };
    frame.render_widget(Paragraph::new(text).style(theme.muted), area);
}

/// Eighth blocks for text sparklines, lowest first.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `values` as a text sparkline of at most `width` cells (the last `width` values when
/// longer: the recent past matters most), scaled between `lo` and `hi`.
pub fn sparkline(values: &[f64], width: usize, lo: f64, hi: f64) -> String {
    let start = values.len().saturating_sub(width);
    values[start..]
        .iter()
        .map(|&v| {
            let t = if hi > lo {
                ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
            } else {
                0.5
            };
            SPARKS[((t * 7.0).round() as usize).min(7)]
        })
        .collect()
}

/// A horizontal bar of `fraction` × `width` cells, with eighth-block precision.
pub fn bar(fraction: f64, width: usize) -> String {
    let eighths = (fraction.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let mut out = "█".repeat(eighths / 8);
    const PARTIAL: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    if !eighths.is_multiple_of(8) {
        out.push(PARTIAL[eighths % 8 - 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_and_bars_scale() {
        assert_eq!(sparkline(&[0.0, 0.5, 1.0], 10, 0.0, 1.0), "▁▅█");
        assert_eq!(sparkline(&[0.0, 0.5, 1.0], 2, 0.0, 1.0), "▅█");
        assert_eq!(bar(0.5, 4), "██");
        assert_eq!(bar(1.0 / 16.0, 4), "▎");
        assert_eq!(bar(0.0, 4), "");
    }

    #[test]
    fn guard_replaces_raw_control_cells() {
        let mut buffer = Buffer::empty(Rect::new(0, 0, 3, 1));
        buffer[(0, 0)].set_symbol("\x1b");
        buffer[(1, 0)].set_symbol("\u{202e}");
        buffer[(2, 0)].set_symbol("a");
        guard(&mut buffer);
        let symbols: Vec<&str> = buffer.content.iter().map(|c| c.symbol()).collect();
        assert_eq!(symbols, ["\u{fffd}", "\u{fffd}", "a"]);
    }
}

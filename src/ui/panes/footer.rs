//! The bottom line: a prompt being typed, a question, the latest message, or key hints
//! generated from the keymap.

use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::Look;
use crate::text::visible;
use crate::ui::action::Action;
use crate::ui::app::{App, Level, Mode};
use crate::ui::keymap::KeyMode;
use crate::ui::prompt::PromptKind;
use crate::ui::text::{tail, thousands, truncate, width};

/// Actions the footer hints at, per mode.
const NORMAL_HINTS: [Action; 11] = [
    Action::TogglePause,
    Action::Inspect,
    Action::MarkAnomaly,
    Action::MarkNormal,
    Action::MarkUnsure,
    Action::Search,
    Action::ThresholdUp,
    Action::Export,
    Action::SaveCheckpoint,
    Action::Help,
    Action::Quit,
];
const INSPECT_HINTS: [Action; 7] = [
    Action::Back,
    Action::NextRow,
    Action::ToggleExplanation,
    Action::MarkAnomaly,
    Action::MarkNormal,
    Action::MarkUnsure,
    Action::Help,
];

/// Draws the footer into `area` (one row).
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let line = match &app.mode {
        Mode::Prompt(prompt) => {
            let mut label = match prompt.kind {
                PromptKind::Search => "Search (row #N or text): ".to_string(),
                PromptKind::ExportPath => "Export to (.csv or .jsonl): ".to_string(),
            };
            let before =
                visible(&prompt.input.chars().take(prompt.cursor).collect::<String>()).into_owned();
            let after =
                visible(&prompt.input.chars().skip(prompt.cursor).collect::<String>()).into_owned();
            let room = (area.width as usize).saturating_sub(width(&label) + 1);
            if width(&before) + width(&after) > room {
                // Too long to show: say how long, and show the text up to the cursor.
                let chars = prompt.input.chars().count();
                label = format!("{}[{} chars] ", label, thousands(chars));
            }
            let room = (area.width as usize).saturating_sub(width(&label) + 1);
            let before = tail(&before, room).into_owned();
            let x = area.x + (width(&label) + width(&before)) as u16;
            if x < area.x + area.width {
                frame.set_cursor_position(Position::new(x, area.y));
            }
            Line::from(vec![
                Span::styled(label, t.accent),
                Span::styled(before, t.text),
                Span::styled(after, t.text),
            ])
        }
        Mode::Confirm(question) => Line::styled(app.question(question), t.warning),
        _ => match &app.message {
            Some(m) => {
                let style = match m.level {
                    Level::Info => t.text,
                    Level::Warning => t.warning,
                    Level::Error => t.error,
                };
                Line::styled(truncate(&m.text, area.width as usize).into_owned(), style)
            }
            None => hints(app, look, area.width as usize),
        },
    };
    // One row in the full layout; the small-terminal view gives a question more rows.
    frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: false }), area);
}

fn hints<'a>(app: &App, look: &Look, max: usize) -> Line<'a> {
    let (mode, mut actions): (KeyMode, Vec<Action>) = match app.mode {
        Mode::Inspect => (KeyMode::Inspect, INSPECT_HINTS.to_vec()),
        Mode::Help { .. } => (KeyMode::Help, vec![Action::Back]),
        _ => (KeyMode::Normal, NORMAL_HINTS.to_vec()),
    };
    // Side by side, the two switches come right after "inspect".
    if mode == KeyMode::Normal && app.runs.len() > 1 {
        actions.splice(2..2, [Action::CycleRanking, Action::CyclePanes]);
    }
    let mut spans = Vec::new();
    let mut used = 0;
    for action in actions {
        let Some(key) = app.keymap.key_for(mode, action) else {
            continue;
        };
        let label = action.hint();
        let w = width(&key) + width(label) + 3;
        if used + w > max {
            break;
        }
        used += w;
        spans.push(Span::styled(format!(" {key}"), look.theme.accent));
        spans.push(Span::styled(format!(" {label} "), look.theme.muted));
    }
    Line::from(spans)
}

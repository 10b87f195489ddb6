//! The help overlay: every key of every mode, generated from the keymap in use.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{overlay, Look};
use crate::ui::app::App;
use crate::ui::keymap::{KeyMode, Keymap};

/// Draws the help overlay into `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let inner = overlay(frame, area, " Keys · j/k scroll · esc closes ", t);
    let mut lines = Vec::new();
    for mode in Keymap::modes() {
        let heading = match mode {
            KeyMode::Normal => "Table",
            KeyMode::Inspect => "Inspect view",
            KeyMode::Help => "This help",
        };
        lines.push(Line::styled(heading, t.title));
        for (action, keys) in app.keymap.bindings(mode) {
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<18}", keys.join(", ")), t.accent),
                Span::styled(action.describe(), t.text),
            ]));
        }
        lines.push(Line::default());
    }
    lines.push(Line::styled("Prompts and questions", t.title));
    for (keys, what) in [
        ("enter / esc", "accept / cancel"),
        ("←, →, home, end", "move the cursor"),
        ("ctrl-u", "clear to the start"),
        ("y / n", "answer a question"),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!("  {keys:<18}"), t.accent),
            Span::styled(what, t.text),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::styled(
        "Keys come from keymap.toml; ~/.config/dagmm-tui/keymap.toml (or --keymap) overrides them.",
        t.muted,
    ));
    let max_scroll = lines.len().saturating_sub(inner.height as usize);
    let scroll = app.help_scroll.min(max_scroll) as u16;
    frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
}

//! The one-line text prompt (search, export path): a small line editor that owns its text
//! and cursor and tells its caller only when the line is submitted or abandoned.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Search,
    ExportPath,
}

/// A line of text being typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub input: String,
    /// Cursor position in characters.
    pub cursor: usize,
}

/// What a key did to a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptOutcome {
    /// Still typing.
    Editing,
    /// Esc or ctrl-c: the prompt closes and nothing happens.
    Cancelled,
    /// Enter: the trimmed line (possibly empty).
    Submitted(String),
}

impl Prompt {
    /// A prompt holding `input`, cursor at its end.
    pub fn new(kind: PromptKind, input: String) -> Self {
        Prompt {
            kind,
            cursor: input.chars().count(),
            input,
        }
    }

    /// Edits the line with `key`: characters insert at the cursor, Backspace/Delete remove
    /// around it, ctrl-u deletes to the start, arrows/Home/End move.
    pub fn handle(&mut self, key: KeyEvent) -> PromptOutcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let mut chars: Vec<char> = self.input.chars().collect();
        self.cursor = self.cursor.min(chars.len());
        match key.code {
            KeyCode::Esc => return PromptOutcome::Cancelled,
            KeyCode::Char('c') if ctrl => return PromptOutcome::Cancelled,
            KeyCode::Enter => return PromptOutcome::Submitted(self.input.trim().to_string()),
            KeyCode::Char('u') if ctrl => {
                chars.drain(..self.cursor);
                self.cursor = 0;
            }
            KeyCode::Char(c) if !c.is_control() && !ctrl => {
                chars.insert(self.cursor, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                chars.remove(self.cursor - 1);
                self.cursor -= 1;
            }
            KeyCode::Delete if self.cursor < chars.len() => {
                chars.remove(self.cursor);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(chars.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = chars.len(),
            _ => {}
        }
        self.input = chars.into_iter().collect();
        PromptOutcome::Editing
    }

    /// Inserts pasted `text` at the cursor in one piece (a bracketed paste): line breaks and
    /// tabs become spaces (the prompt is one line), other control characters are dropped.
    pub fn paste(&mut self, text: &str) {
        let pasted: Vec<char> = text
            .chars()
            .filter_map(|c| match c {
                '\n' | '\r' | '\t' => Some(' '),
                c if c.is_control() => None,
                c => Some(c),
            })
            .collect();
        let mut chars: Vec<char> = self.input.chars().collect();
        self.cursor = self.cursor.min(chars.len());
        chars.splice(self.cursor..self.cursor, pasted.iter().copied());
        self.cursor += pasted.len();
        self.input = chars.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn typed(prompt: &mut Prompt, text: &str) {
        for c in text.chars() {
            assert_eq!(prompt.handle(key(KeyCode::Char(c))), PromptOutcome::Editing);
        }
    }

    #[test]
    fn typing_inserts_at_the_cursor_in_characters_not_bytes() {
        let mut p = Prompt::new(PromptKind::Search, String::new());
        typed(&mut p, "héllo");
        assert_eq!((p.input.as_str(), p.cursor), ("héllo", 5));
        p.handle(key(KeyCode::Left));
        p.handle(key(KeyCode::Left));
        typed(&mut p, "ø");
        assert_eq!((p.input.as_str(), p.cursor), ("hélølo", 4));
        p.handle(key(KeyCode::Home));
        typed(&mut p, ">");
        p.handle(key(KeyCode::End));
        typed(&mut p, "<");
        assert_eq!(p.input, ">hélølo<");
    }

    #[test]
    fn backspace_delete_and_ctrl_u_edit_around_the_cursor() {
        let mut p = Prompt::new(PromptKind::ExportPath, "abcdef".into());
        assert_eq!(p.cursor, 6);
        p.handle(key(KeyCode::Backspace));
        assert_eq!((p.input.as_str(), p.cursor), ("abcde", 5));
        p.handle(key(KeyCode::Left));
        p.handle(key(KeyCode::Left));
        p.handle(key(KeyCode::Delete));
        assert_eq!((p.input.as_str(), p.cursor), ("abce", 3));
        p.handle(ctrl('u'));
        assert_eq!((p.input.as_str(), p.cursor), ("e", 0));
        // Nothing left of the cursor: Backspace and Left change nothing.
        p.handle(key(KeyCode::Backspace));
        p.handle(key(KeyCode::Left));
        assert_eq!((p.input.as_str(), p.cursor), ("e", 0));
        p.handle(key(KeyCode::End));
        p.handle(key(KeyCode::Delete));
        p.handle(key(KeyCode::Right));
        assert_eq!((p.input.as_str(), p.cursor), ("e", 1));
    }

    #[test]
    fn enter_submits_the_trimmed_line_and_esc_or_ctrl_c_cancel() {
        let mut p = Prompt::new(PromptKind::Search, String::new());
        typed(&mut p, "  tcp ");
        assert_eq!(
            p.handle(key(KeyCode::Enter)),
            PromptOutcome::Submitted("tcp".into())
        );
        assert_eq!(p.handle(key(KeyCode::Esc)), PromptOutcome::Cancelled);
        assert_eq!(p.handle(ctrl('c')), PromptOutcome::Cancelled);
        // Other control chords insert nothing.
        p.handle(ctrl('x'));
        assert_eq!(p.input, "  tcp ");
    }

    #[test]
    fn a_paste_lands_whole_at_the_cursor_on_one_line() {
        let mut p = Prompt::new(PromptKind::Search, "ab".into());
        p.handle(key(KeyCode::Left));
        let long = "x".repeat(10_000);
        p.paste(&format!("{long}\r\n\x1by\tz"));
        assert_eq!(p.input, format!("a{long}  y zb"));
        assert_eq!(p.cursor, 1 + 10_000 + 5);
    }
}

//! Untrusted text made safe to show (the CLI, the log and the workbench all use it): cells, column names and file names may hold escape
//! sequences, other control characters, bidi overrides or zero-width characters. Each is
//! shown as a visible escape (`\x1b`, `\u202e`) instead of reaching the terminal or a log.

use std::borrow::Cow;
use std::fmt::Write;

/// `true` for characters that must not reach a terminal raw.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{061c}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// `text` with every unsafe character replaced by a visible escape.
pub fn visible(text: &str) -> Cow<'_, str> {
    escape(text, is_unsafe, |out, c| {
        if (c as u32) < 0x80 {
            write!(out, "\\x{:02x}", c as u32)
        } else {
            write!(out, "\\u{:04x}", c as u32)
        }
    })
}

/// [`visible`] line by line: a new line stays a new line (a TOML error's caret lines read as
/// written); every other unsafe character, a carriage return included, is escaped.
pub fn visible_lines(text: &str) -> String {
    text.split('\n').map(visible).collect::<Vec<_>>().join("\n")
}

/// Serialised JSON made terminal-safe without changing its meaning: every unsafe
/// character becomes a `\uXXXX` escape. serde_json escapes C0 controls but leaves DEL, C1
/// and bidi characters raw; they can only occur inside strings, where the escape means the same.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    // Newlines are structure (pretty printing); serde_json never leaves one in a string.
    escape(
        json,
        |c| c != '\n' && is_unsafe(c),
        |out, c| write!(out, "\\u{:04x}", c as u32),
    )
}

/// `text` with each character that `escaped` picks written by `write_escape` instead;
/// borrowed when there is none.
fn escape(
    text: &str,
    escaped: impl Fn(char) -> bool,
    write_escape: impl Fn(&mut String, char) -> std::fmt::Result,
) -> Cow<'_, str> {
    if !text.chars().any(&escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            let _ = write_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bidi_and_zero_width_become_visible_escapes() {
        assert_eq!(visible("plain é 漢"), "plain é 漢");
        assert_eq!(visible("a\x1b[31mred"), "a\\x1b[31mred");
        assert_eq!(visible("\u{202e}evil\u{200b}"), "\\u202eevil\\u200b");
        assert_eq!(visible("tab\there\u{9b}"), "tab\\x09here\\u009b");
        let value = serde_json::json!({ "cell": "a\u{7f}\u{9b}\u{202e}\x1b\n" });
        let json = serde_json::to_string_pretty(&value).unwrap();
        let safe = json_safe(&json);
        assert!(!safe.chars().any(|c| c != '\n' && is_unsafe(c)), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }
}

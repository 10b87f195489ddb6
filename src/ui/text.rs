//! Untrusted text made safe to show: cells, column names and file names may hold escape
//! sequences, other control characters, bidi overrides or zero-width characters. Each is
//! shown as a visible escape (`\x1b`, `\u202e`) instead of reaching the terminal or a log.

use std::borrow::Cow;
use std::fmt::Write;

use unicode_width::UnicodeWidthStr;

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

/// Display width of `text` in terminal columns (wide characters count 2).
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` cut to at most `max` columns, ending in `…` when cut.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if width(text) <= max {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    if max > 0 {
        out.push('…');
    }
    Cow::Owned(out)
}

/// `n` with thousands separators: `494,021`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number in about `digits` significant digits, switching to exponent form when tiny or
/// huge: loss values range over many orders of magnitude.
pub fn number(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        return format!("{v:.prec$e}", prec = digits.saturating_sub(1));
    }
    // Digits before the decimal point (negative for 0.00x): the rest go after it.
    let int_digits = if a == 0.0 {
        1
    } else {
        a.log10().floor() as i64 + 1
    };
    let prec = (digits as i64 - int_digits).max(0) as usize;
    format!("{v:.prec$}")
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

    #[test]
    fn truncation_counts_wide_characters() {
        assert_eq!(truncate("漢字漢字", 5), "漢字…");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(thousands(494021), "494,021");
        assert_eq!(thousands(12), "12");
        assert_eq!(number(0.013245, 3), "0.0132");
        assert_eq!(number(0.5, 3), "0.500");
        assert_eq!(number(2.871, 4), "2.871");
        assert_eq!(number(123456789.0, 3), "1.23e8");
    }
}

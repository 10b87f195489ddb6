//! Text for the terminal: display widths, truncation and number formats. Escaping of
//! untrusted text lives in [`crate::text`].

use std::borrow::Cow;

use unicode_width::UnicodeWidthStr;

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

/// The end of `text` in at most `max` columns, starting with `…` when cut (a long prompt
/// shows the text just before its cursor).
pub fn tail(text: &str, max: usize) -> Cow<'_, str> {
    if width(text) <= max {
        return Cow::Borrowed(text);
    }
    let mut kept = Vec::new();
    let mut used = 0;
    for c in text.chars().rev() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        kept.push(c);
        used += w;
    }
    let mut out = String::with_capacity(kept.len() + 3);
    if max > 0 {
        out.push('…');
    }
    out.extend(kept.into_iter().rev());
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

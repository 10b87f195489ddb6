//! Colour codes a 16-colour terminal understands. crossterm writes even the 16 ANSI
//! colours as 256-colour codes (`ESC[38;5;1m`), which a `TERM=vt100` or a Linux console
//! shows wrongly or not at all; on such a terminal the workbench's output passes through
//! [`Sgr16`], which rewrites them to the classic codes (`ESC[31m`, `ESC[91m`, `ESC[41m`).

use std::io::{self, Write};

/// Longest escape sequence held back while it is being rewritten; anything longer passes
/// through as it is.
const MAX_SEQUENCE: usize = 64;

/// A writer that rewrites 256-colour codes for the 16 ANSI colours into the classic SGR
/// codes (when `enabled`), and passes every other byte through unchanged.
pub struct Sgr16<W: Write> {
    inner: W,
    enabled: bool,
    /// An escape sequence read so far (from ESC), not yet written.
    pending: Vec<u8>,
}

impl<W: Write> Sgr16<W> {
    /// Wraps `inner`; with `enabled` false it is a plain pass-through.
    pub fn new(inner: W, enabled: bool) -> Self {
        Sgr16 {
            inner,
            enabled,
            pending: Vec::new(),
        }
    }

    /// Writes the held-back sequence, rewritten when it is a complete SGR sequence.
    fn flush_pending(&mut self, complete: bool) -> io::Result<()> {
        let sequence = std::mem::take(&mut self.pending);
        if complete && sequence.ends_with(b"m") && sequence.starts_with(b"\x1b[") {
            let params = &sequence[2..sequence.len() - 1];
            if let Ok(text) = std::str::from_utf8(params) {
                return write!(self.inner, "\x1b[{}m", rewrite(text));
            }
        }
        self.inner.write_all(&sequence)
    }
}

/// SGR parameters with `38;5;N` / `48;5;N` (N < 16) written as 30–37, 90–97 / 40–47, 100–107.
fn rewrite(params: &str) -> String {
    let parts: Vec<&str> = params.split(';').collect();
    let mut out: Vec<String> = Vec::with_capacity(parts.len());
    let mut i = 0;
    while i < parts.len() {
        let base = match parts[i] {
            "38" => Some(30),
            "48" => Some(40),
            _ => None,
        };
        if let (Some(base), Some(&"5"), Some(n)) = (
            base,
            parts.get(i + 1),
            parts.get(i + 2).and_then(|n| n.parse::<u8>().ok()),
        ) {
            if n < 16 {
                let code = if n < 8 {
                    base + u32::from(n)
                } else {
                    base + 60 + u32::from(n - 8)
                };
                out.push(code.to_string());
                i += 3;
                continue;
            }
        }
        out.push(parts[i].to_string());
        i += 1;
    }
    out.join(";")
}

impl<W: Write> Write for Sgr16<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.enabled {
            return self.inner.write(buf);
        }
        let mut plain_from = 0;
        for (i, &b) in buf.iter().enumerate() {
            if self.pending.is_empty() {
                if b == 0x1b {
                    self.inner.write_all(&buf[plain_from..i])?;
                    self.pending.push(b);
                }
                continue;
            }
            self.pending.push(b);
            plain_from = i + 1;
            let len = self.pending.len();
            let csi = self.pending.get(1) == Some(&b'[');
            let finished = if len == 2 {
                !csi
            } else {
                csi && (0x40..=0x7e).contains(&b)
            };
            if finished || len >= MAX_SEQUENCE {
                self.flush_pending(finished)?;
            }
        }
        if self.pending.is_empty() {
            self.inner.write_all(&buf[plain_from..])?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(pieces: &[&str]) -> String {
        let mut w = Sgr16::new(Vec::new(), true);
        for p in pieces {
            w.write_all(p.as_bytes()).unwrap();
        }
        String::from_utf8(w.inner).unwrap()
    }

    #[test]
    fn the_sixteen_colours_get_classic_codes_even_when_split_across_writes() {
        assert_eq!(through(&["a\x1b[38;5;1mb"]), "a\x1b[31mb");
        assert_eq!(through(&["\x1b[", "38;", "5;9", "m", "x"]), "\x1b[91mx");
        assert_eq!(through(&["\x1b[1;48;5;0;38;5;15m"]), "\x1b[1;40;97m");
        assert_eq!(through(&["\x1b[48;5;12m"]), "\x1b[104m");
        // Other sequences and 256-colour indices above 15 pass unchanged.
        assert_eq!(
            through(&["\x1b[38;5;200m\x1b[2J\x1b[?2026h"]),
            "\x1b[38;5;200m\x1b[2J\x1b[?2026h"
        );
        assert_eq!(through(&["plain ", "text"]), "plain text");
        let mut off = Sgr16::new(Vec::new(), false);
        off.write_all(b"\x1b[38;5;1m").unwrap();
        assert_eq!(off.inner, b"\x1b[38;5;1m");
    }
}

//! Colour themes as data (`themes/*.toml`, embedded so the binary works from anywhere), and
//! their degradation to what the terminal can show: 24-bit only when `COLORTERM` says so,
//! else the nearest of the 256 or 16 colours; `NO_COLOR` gives the monochrome theme.

use std::path::Path;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// Built-in themes by name.
const BUILT_IN: [(&str, &str); 4] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("monochrome", include_str!("../../themes/monochrome.toml")),
];

/// A theme file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    text: String,
    muted: String,
    accent: String,
    title: String,
    border: String,
    selected_fg: String,
    selected_bg: String,
    flagged: String,
    anomaly: String,
    normal: String,
    unsure: String,
    series: [String; 4],
    ok: String,
    warning: String,
    error: String,
    gauge: String,
}

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    TrueColor,
    Ansi256,
    Ansi16,
}

impl ColorDepth {
    /// From `COLORTERM` and `TERM`, the way terminals announce themselves.
    pub fn detect() -> Self {
        Self::of(
            &std::env::var("COLORTERM").unwrap_or_default(),
            &std::env::var("TERM").unwrap_or_default(),
        )
    }

    /// The depth announced by these `COLORTERM` and `TERM` values.
    pub fn of(colorterm: &str, term: &str) -> Self {
        // COLORTERM is often inherited from the desktop by a session whose TERM says less
        // (a serial console, `TERM=vt100` over SSH): the TERM of such a terminal wins.
        let limited = term.starts_with("vt")
            || matches!(term, "linux" | "ansi" | "cons25" | "dumb")
            || term.ends_with("-16color")
            || term.ends_with("-color") && !term.contains("256");
        if limited {
            ColorDepth::Ansi16
        } else if colorterm == "truecolor" || colorterm == "24bit" {
            ColorDepth::TrueColor
        } else if term.contains("256color") {
            ColorDepth::Ansi256
        } else {
            ColorDepth::Ansi16
        }
    }
}

/// The styles the panes draw with.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub text: Style,
    pub muted: Style,
    pub accent: Style,
    pub title: Style,
    pub border: Style,
    /// The selected table row: always bold, and reversed when the theme has no colours
    /// for it, so it reads without colour.
    pub selected: Style,
    pub flagged: Style,
    pub anomaly: Style,
    pub normal: Style,
    pub unsure: Style,
    pub series: [Style; 4],
    pub ok: Style,
    pub warning: Style,
    pub error: Style,
    pub gauge: Style,
}

impl Default for Theme {
    fn default() -> Self {
        Theme::built_in("dark", ColorDepth::Ansi16).expect("built-in theme")
    }
}

impl Theme {
    /// Names of the built-in themes.
    pub fn names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(n, _)| *n)
    }

    /// A built-in theme by name.
    pub fn built_in(name: &str, depth: ColorDepth) -> Result<Theme> {
        let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            anyhow!(
                "no theme '{name}' (built in: {}; or give a path to a .toml file)",
                Theme::names().collect::<Vec<_>>().join(", ")
            )
        })?;
        Theme::parse(text, depth)
    }

    /// The theme the user asked for: `NO_COLOR` wins, then `--theme NAME|PATH`, then dark.
    pub fn select(requested: Option<&str>, depth: ColorDepth) -> Result<Theme> {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return Theme::built_in("monochrome", depth);
        }
        match requested {
            None => Theme::built_in("dark", depth),
            Some(name) if Theme::names().any(|n| n == name) => Theme::built_in(name, depth),
            Some(path) if Path::new(path).exists() => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading theme {path}"))?;
                Theme::parse(&text, depth).with_context(|| format!("theme {path}"))
            }
            Some(other) => Theme::built_in(other, depth),
        }
    }

    /// Parses a theme file, degrading its colours to `depth`.
    pub fn parse(text: &str, depth: ColorDepth) -> Result<Theme> {
        let file: ThemeFile = toml::from_str(text)?;
        let color = |s: &str| -> Result<Color> {
            let c = Color::from_str(s).map_err(|_| anyhow!("'{s}' is not a colour"))?;
            Ok(degrade(c, depth))
        };
        let fg = |s: &str| -> Result<Style> { Ok(Style::default().fg(color(s)?)) };
        let (sel_fg, sel_bg) = (color(&file.selected_fg)?, color(&file.selected_bg)?);
        let selected = if sel_fg == Color::Reset && sel_bg == Color::Reset {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::default()
                .fg(sel_fg)
                .bg(sel_bg)
                .add_modifier(Modifier::BOLD)
        };
        if file.name.trim().is_empty() {
            bail!("the theme needs a name");
        }
        Ok(Theme {
            name: file.name.clone(),
            text: fg(&file.text)?,
            muted: fg(&file.muted)?,
            accent: fg(&file.accent)?,
            title: fg(&file.title)?.add_modifier(Modifier::BOLD),
            border: fg(&file.border)?,
            selected,
            flagged: fg(&file.flagged)?,
            anomaly: fg(&file.anomaly)?.add_modifier(Modifier::BOLD),
            normal: fg(&file.normal)?,
            unsure: fg(&file.unsure)?,
            series: [
                fg(&file.series[0])?,
                fg(&file.series[1])?,
                fg(&file.series[2])?,
                fg(&file.series[3])?,
            ],
            ok: fg(&file.ok)?,
            warning: fg(&file.warning)?.add_modifier(Modifier::BOLD),
            error: fg(&file.error)?.add_modifier(Modifier::BOLD),
            gauge: fg(&file.gauge)?,
        })
    }
}

/// RGB of the 16 ANSI colours (xterm defaults), in `Color::Indexed` order.
const ANSI16: [(u8, u8, u8); 16] = [
    (0, 0, 0),
    (205, 0, 0),
    (0, 205, 0),
    (205, 205, 0),
    (0, 0, 238),
    (205, 0, 205),
    (0, 205, 205),
    (229, 229, 229),
    (127, 127, 127),
    (255, 0, 0),
    (0, 255, 0),
    (255, 255, 0),
    (92, 92, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
];

const ANSI16_COLORS: [Color; 16] = [
    Color::Black,
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::Gray,
    Color::DarkGray,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
    Color::White,
];

/// RGB of xterm colour `index`.
fn xterm_rgb(index: u8) -> (u8, u8, u8) {
    match index {
        0..=15 => ANSI16[index as usize],
        16..=231 => {
            let i = index - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            (level(i / 36), level((i / 6) % 6), level(i % 6))
        }
        _ => {
            let g = 8 + (index - 232) * 10;
            (g, g, g)
        }
    }
}

fn distance(a: (u8, u8, u8), b: (u8, u8, u8)) -> u32 {
    let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).pow(2) as u32;
    d(a.0, b.0) + d(a.1, b.1) + d(a.2, b.2)
}

/// The nearest colour `depth` can show.
pub fn degrade(color: Color, depth: ColorDepth) -> Color {
    let rgb = match color {
        Color::Rgb(r, g, b) => (r, g, b),
        Color::Indexed(i) if i >= 16 => xterm_rgb(i),
        Color::Indexed(i) => return ANSI16_COLORS[i as usize],
        named => return named,
    };
    match depth {
        ColorDepth::TrueColor => color,
        ColorDepth::Ansi256 => Color::Indexed(
            (16..=255u8)
                .min_by_key(|&i| distance(xterm_rgb(i), rgb))
                .unwrap_or(16),
        ),
        ColorDepth::Ansi16 => {
            let nearest = (0..16usize)
                .min_by_key(|&i| distance(ANSI16[i], rgb))
                .unwrap_or(0);
            ANSI16_COLORS[nearest]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_without_256_colours_get_16_whatever_colorterm_says() {
        assert_eq!(ColorDepth::of("truecolor", "vt100"), ColorDepth::Ansi16);
        assert_eq!(ColorDepth::of("truecolor", "linux"), ColorDepth::Ansi16);
        assert_eq!(ColorDepth::of("", "xterm-color"), ColorDepth::Ansi16);
        assert_eq!(ColorDepth::of("", "xterm"), ColorDepth::Ansi16);
        assert_eq!(ColorDepth::of("", "tmux-256color"), ColorDepth::Ansi256);
        assert_eq!(
            ColorDepth::of("24bit", "xterm-256color"),
            ColorDepth::TrueColor
        );
        let light = Theme::built_in("light", ColorDepth::of("truecolor", "vt100")).unwrap();
        assert!(
            !matches!(light.accent.fg, Some(Color::Rgb(..) | Color::Indexed(16..))),
            "{:?}",
            light.accent
        );
    }

    #[test]
    fn every_built_in_theme_parses_at_every_depth() {
        for name in Theme::names() {
            for depth in [
                ColorDepth::TrueColor,
                ColorDepth::Ansi256,
                ColorDepth::Ansi16,
            ] {
                let theme = Theme::built_in(name, depth).unwrap();
                assert_eq!(theme.name, name);
            }
        }
        assert!(Theme::built_in("neon", ColorDepth::Ansi16).is_err());
    }

    #[test]
    fn colours_degrade_to_what_the_terminal_has() {
        let orange = Color::Rgb(255, 135, 0);
        assert_eq!(degrade(orange, ColorDepth::TrueColor), orange);
        assert_eq!(degrade(orange, ColorDepth::Ansi256), Color::Indexed(208));
        assert_eq!(
            degrade(Color::Rgb(250, 10, 10), ColorDepth::Ansi16),
            Color::LightRed
        );
        assert_eq!(
            degrade(Color::Indexed(9), ColorDepth::Ansi16),
            Color::LightRed
        );
        let light = Theme::built_in("light", ColorDepth::Ansi16).unwrap();
        assert!(
            matches!(light.accent.fg, Some(c) if !matches!(c, Color::Rgb(..) | Color::Indexed(_)))
        );
    }

    #[test]
    fn monochrome_selection_reads_without_colour() {
        let mono = Theme::built_in("monochrome", ColorDepth::TrueColor).unwrap();
        assert!(mono.selected.add_modifier.contains(Modifier::REVERSED));
    }
}

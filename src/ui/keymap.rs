//! Keys as data: the default keymap is `keymap.toml` (embedded), a user file overrides only
//! the keys it names, and the help screen and footer are generated from the result.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;

/// The embedded defaults.
pub const DEFAULT_KEYMAP: &str = include_str!("keymap.toml");

/// The views that have keys of their own (prompts take text and are not remapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyMode {
    Normal,
    Inspect,
    Help,
}

impl KeyMode {
    const ALL: [KeyMode; 3] = [KeyMode::Normal, KeyMode::Inspect, KeyMode::Help];

    /// The TOML table name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            KeyMode::Normal => "normal",
            KeyMode::Inspect => "inspect",
            KeyMode::Help => "help",
        }
    }
}

/// A key as written in the keymap file: `q`, `G`, `ctrl-c`, `enter`, `space`, `pagedown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    code: KeyName,
    ctrl: bool,
}

/// The keys a keymap can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum KeyName {
    Char(char),
    Enter,
    Esc,
    Tab,
    Backspace,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
}

const NAMED: [(&str, KeyName); 13] = [
    ("enter", KeyName::Enter),
    ("esc", KeyName::Esc),
    ("tab", KeyName::Tab),
    ("backspace", KeyName::Backspace),
    ("up", KeyName::Up),
    ("down", KeyName::Down),
    ("left", KeyName::Left),
    ("right", KeyName::Right),
    ("pageup", KeyName::PageUp),
    ("pagedown", KeyName::PageDown),
    ("home", KeyName::Home),
    ("end", KeyName::End),
    ("space", KeyName::Char(' ')),
];

impl Key {
    /// Parses the keymap spelling of a key.
    pub fn parse(text: &str) -> Result<Key> {
        let (ctrl, rest) = match text.strip_prefix("ctrl-") {
            Some(rest) if !rest.is_empty() => (true, rest),
            _ => (false, text),
        };
        let code = if let Some((_, name)) = NAMED.iter().find(|(n, _)| *n == rest) {
            *name
        } else {
            let mut chars = rest.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => KeyName::Char(c),
                _ => bail!(
                    "unknown key '{text}' (a character, ctrl-x, or one of {})",
                    names()
                ),
            }
        };
        Ok(Key { code, ctrl })
    }

    /// The key of a terminal key event (shift is part of the character: `G`, `+`).
    pub fn of(event: &KeyEvent) -> Option<Key> {
        let code = match event.code {
            KeyCode::Char(c) => KeyName::Char(c),
            KeyCode::Enter => KeyName::Enter,
            KeyCode::Esc => KeyName::Esc,
            KeyCode::Tab => KeyName::Tab,
            KeyCode::Backspace => KeyName::Backspace,
            KeyCode::Up => KeyName::Up,
            KeyCode::Down => KeyName::Down,
            KeyCode::Left => KeyName::Left,
            KeyCode::Right => KeyName::Right,
            KeyCode::PageUp => KeyName::PageUp,
            KeyCode::PageDown => KeyName::PageDown,
            KeyCode::Home => KeyName::Home,
            KeyCode::End => KeyName::End,
            _ => return None,
        };
        Some(Key {
            code,
            ctrl: event.modifiers.contains(KeyModifiers::CONTROL),
        })
    }

    /// How the help screen and footer write the key.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyName::Char(' ') => "space".to_string(),
            KeyName::Char(c) => c.to_string(),
            KeyName::Up => "↑".into(),
            KeyName::Down => "↓".into(),
            other => NAMED
                .iter()
                .find(|(_, n)| *n == other)
                .map_or("?", |(s, _)| s)
                .to_string(),
        };
        if self.ctrl {
            format!("ctrl-{base}")
        } else {
            base
        }
    }
}

fn names() -> String {
    NAMED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Key → action, per mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    modes: BTreeMap<KeyMode, BTreeMap<Key, Action>>,
}

impl Default for Keymap {
    fn default() -> Self {
        let mut keymap = Keymap {
            modes: BTreeMap::new(),
        };
        keymap
            .apply(DEFAULT_KEYMAP)
            .expect("the embedded keymap is valid (checked by a unit test)");
        keymap
    }
}

impl Keymap {
    /// The defaults with a user file laid over them: `named` (`--keymap`, which must
    /// exist), else `default_file` when it exists. A keymap that leaves no key to quit is
    /// refused: the workbench could not be left.
    pub fn load(named: Option<&Path>, default_file: Option<&Path>) -> Result<Keymap> {
        let mut keymap = Keymap::default();
        let file = match named {
            Some(path) if !path.is_file() => {
                bail!("--keymap {}: no such file", path.display())
            }
            Some(path) => Some(path),
            None => default_file.filter(|p| p.is_file()),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            keymap
                .apply(&text)
                .and_then(|()| keymap.check_quit())
                .with_context(|| format!("{}: invalid keymap", path.display()))?;
        }
        Ok(keymap)
    }

    /// An error when no key of the normal view quits.
    fn check_quit(&self) -> Result<()> {
        if self.key_for(KeyMode::Normal, Action::Quit).is_none() {
            bail!("no key is bound to Quit in [normal]: the workbench could not be left (bind one, e.g. q = \"Quit\")");
        }
        Ok(())
    }

    /// Lays the bindings of a keymap TOML text over this one.
    pub fn apply(&mut self, text: &str) -> Result<()> {
        let table: toml::Table = toml::from_str(text)?;
        for (mode_name, keys) in table {
            let mode = KeyMode::ALL
                .into_iter()
                .find(|m| m.name() == mode_name)
                .ok_or_else(|| anyhow!("unknown mode [{mode_name}] (normal, inspect, help)"))?;
            let keys = keys
                .as_table()
                .ok_or_else(|| anyhow!("[{mode_name}] must be a table of key = action"))?;
            let bindings = self.modes.entry(mode).or_default();
            for (key, value) in keys {
                let key = Key::parse(key)?;
                if value.as_str() == Some("none") {
                    bindings.remove(&key);
                    continue;
                }
                let action: Action = value
                    .clone()
                    .try_into()
                    .map_err(|e| anyhow!("[{mode_name}] {}: {e}", key.label()))?;
                bindings.insert(key, action);
            }
        }
        Ok(())
    }

    /// The action bound to `event` in `mode`.
    pub fn action(&self, mode: KeyMode, event: &KeyEvent) -> Option<Action> {
        let key = Key::of(event)?;
        self.modes.get(&mode)?.get(&key).copied()
    }

    /// Every action of `mode` with the keys bound to it, in [`Action`] order.
    pub fn bindings(&self, mode: KeyMode) -> Vec<(Action, Vec<String>)> {
        let mut by_action: BTreeMap<Action, Vec<String>> = BTreeMap::new();
        for (key, action) in self.modes.get(&mode).into_iter().flatten() {
            by_action.entry(*action).or_default().push(key.label());
        }
        by_action.into_iter().collect()
    }

    /// The simplest key bound to `action` in `mode` (plain before ctrl), for hints.
    pub fn key_for(&self, mode: KeyMode, action: Action) -> Option<String> {
        self.modes
            .get(&mode)?
            .iter()
            .filter(|(_, a)| **a == action)
            .min_by_key(|(k, _)| (k.ctrl, k.label().chars().count()))
            .map(|(k, _)| k.label())
    }

    /// Every mode, in help-screen order.
    pub fn modes() -> [KeyMode; 3] {
        KeyMode::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn defaults_parse_and_resolve_keys() {
        let km = Keymap::default();
        let n = KeyMode::Normal;
        assert_eq!(
            km.action(n, &press(KeyCode::Char('q'), KeyModifiers::NONE)),
            Some(Action::Quit)
        );
        assert_eq!(
            km.action(n, &press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            km.action(n, &press(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            km.action(n, &press(KeyCode::Char('2'), KeyModifiers::NONE)),
            Some(Action::ToggleSeries(1))
        );
        assert_eq!(
            km.action(n, &press(KeyCode::Char(' '), KeyModifiers::NONE)),
            Some(Action::TogglePause)
        );
        assert_eq!(
            km.action(KeyMode::Inspect, &press(KeyCode::Esc, KeyModifiers::NONE)),
            Some(Action::Back)
        );
        assert_eq!(
            km.action(n, &press(KeyCode::Char('z'), KeyModifiers::NONE)),
            None
        );
    }

    #[test]
    fn user_file_overrides_only_what_it_names() {
        let mut km = Keymap::default();
        km.apply("[normal]\nq = \"none\"\nQ = \"Quit\"\nw = \"Export\"\n")
            .unwrap();
        let n = KeyMode::Normal;
        assert_eq!(
            km.action(n, &press(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            km.action(n, &press(KeyCode::Char('Q'), KeyModifiers::SHIFT)),
            Some(Action::Quit)
        );
        assert_eq!(
            km.action(n, &press(KeyCode::Char('w'), KeyModifiers::NONE)),
            Some(Action::Export)
        );
        assert_eq!(
            km.action(n, &press(KeyCode::Char('e'), KeyModifiers::NONE)),
            Some(Action::Export)
        );
        let quit_keys = &km
            .bindings(n)
            .into_iter()
            .find(|(a, _)| *a == Action::Quit)
            .unwrap()
            .1;
        assert_eq!(quit_keys, &vec!["Q".to_string(), "ctrl-c".to_string()]);
        assert!(km.apply("[normal]\nq = \"Fly\"\n").is_err());
        assert!(km.apply("[normal]\nhyper-q = \"Quit\"\n").is_err());
        assert!(km.apply("[sideways]\nq = \"Quit\"\n").is_err());
    }
}

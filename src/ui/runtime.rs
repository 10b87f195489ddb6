//! The workbench's runtime: owns the terminal, and joins four threads through one channel —
//! terminal input, training events, POSIX signals, and background exports. The main loop
//! only waits on that channel, so nothing it does can block on training or on a dead
//! terminal (crossterm's reader can spin after an SSH drop; here it spins alone, and the
//! SIGHUP that comes with the drop ends the process cleanly).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, EnableBracketedPaste, Event as TermEvent, KeyEventKind,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{BeginSynchronizedUpdate, EndSynchronizedUpdate};
use ratatui::Terminal;

use super::app::{App, AppConfig, Effect, Msg};
use super::keymap::Keymap;
use super::panes::{self, Look};
use super::sgr::Sgr16;
use super::theme::{ColorDepth, Theme};
use crate::logging;
use crate::text::visible;
use crate::train::{spawn_session, Control, SessionPlan, TrainEvent};
use crate::triage::{check_source, data_state_dir, export, CellSafety, Journal};

/// Minimum time between two frames drawn for training progress (≤ 10 fps over SSH);
/// a key press is answered at once.
const FRAME_INTERVAL: Duration = Duration::from_millis(100);
/// A slow key is logged at most this often (a burst of slow keys, a paste typed as keys,
/// must not flood the log); the warning counts the ones it stood for.
const SLOW_KEY_WARN_EVERY: Duration = Duration::from_secs(10);
/// A key answered later than this is slow.
const SLOW_KEY_MS: f64 = 50.0;
/// How long a save on SIGHUP/SIGTERM may take before the process exits anyway.
const SAVE_ON_SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Workbench settings beyond the session plan.
#[derive(Debug, Clone)]
pub struct WorkbenchOptions {
    /// `--theme NAME|PATH`.
    pub theme: Option<String>,
    /// Charts with braille dots (else half blocks, for fonts without braille).
    pub braille: bool,
    /// `--keymap PATH` (default: `~/.config/dagmm-tui/keymap.toml` when present).
    pub keymap: Option<PathBuf>,
    /// Where marks, checkpoints and the log live.
    pub state_dir: PathBuf,
    /// Label value of the anomaly class for live metrics.
    pub anomaly: Option<String>,
    /// Initial share of rows flagged.
    pub contamination: f64,
    /// How text cells are written to CSV exports.
    pub safety: CellSafety,
}

/// Everything the main loop hears about.
enum Event {
    Key(event::KeyEvent, Instant),
    /// Text pasted in one piece (the terminal's bracketed paste).
    Paste(String, Instant),
    Resize,
    Train(TrainEvent),
    Exported(Result<(PathBuf, crate::triage::Exported), String>),
    Signal(i32),
    /// The terminal cannot be read any more (it is gone).
    InputClosed,
}

/// The user's keymap file: `$XDG_CONFIG_HOME/dagmm-tui/keymap.toml` or `~/.config/…`.
fn default_keymap_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("dagmm-tui/keymap.toml"))
}

/// An error for a terminal the workbench cannot drive (`TERM=dumb`: no cursor motion, no
/// alternate screen), before anything is drawn.
pub fn check_terminal() -> Result<()> {
    let term = std::env::var("TERM").unwrap_or_default();
    if term == "dumb" {
        anyhow::bail!(
            "TERM=dumb: this terminal cannot show the workbench (it needs cursor motion and an \
             alternate screen); use a terminal such as xterm or tmux, or the headless commands \
             (dagmm-tui train / score / eval)"
        );
    }
    Ok(())
}

/// Runs the workbench on `plan` until the user quits (or the terminal goes away).
pub fn run(plan: SessionPlan, options: WorkbenchOptions) -> Result<()> {
    check_terminal()?;
    let data_dir = data_state_dir(&options.state_dir, &plan.data);
    let log_path = options.state_dir.join("dagmm-tui.log");
    logging::init(&log_path).with_context(|| format!("opening the log {}", log_path.display()))?;
    logging::log("INFO", &format!("workbench on {}", plan.data.display()));
    let (journal, marks, mut warnings) = Journal::open(&data_dir)?;
    warnings.extend(check_source(&data_dir, &plan.data, &marks));
    let journal_path = journal.path().to_path_buf();
    let keymap = Keymap::load(options.keymap.as_deref(), default_keymap_file().as_deref())?;
    let depth = ColorDepth::detect();
    let look = Look {
        theme: Theme::select(options.theme.as_deref(), depth)?,
        braille: options.braille,
    };
    let training = matches!(plan.model, crate::train::ModelSource::Train(_));
    let source = ExportSource {
        data: plan.data.clone(),
        safety: options.safety,
    };
    let config = AppConfig {
        file: plan.data.file_name().map_or_else(
            || plan.data.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        export_stem: export_stem(&plan.data),
        anomaly: options.anomaly.clone(),
        contamination: options.contamination,
        checkpoint_dir: data_dir.join("checkpoint"),
        training,
    };
    let mut app = App::new(config, keymap, marks, Some(journal), Instant::now());
    for w in &warnings {
        app.say(super::app::Level::Warning, w.clone());
    }

    let (tx, rx) = channel();
    let worker = spawn_session(plan);
    forward_training(worker.events, tx.clone());
    watch_signals(tx.clone())?;
    read_input(tx.clone());

    let mut terminal = open_terminal(depth == ColorDepth::Ansi16)?;
    let outcome = main_loop(
        &mut terminal,
        &mut app,
        &look,
        &rx,
        &tx,
        &worker.controls,
        &source,
    );
    let _ = execute!(std::io::stdout(), DisableBracketedPaste);
    ratatui::restore();
    let _ = worker.controls.send(Control::Stop);
    let code = outcome?;
    eprintln!(
        "dagmm-tui: {} marked row(s) kept in {} · log {}",
        app.marks.len(),
        visible(&journal_path.display().to_string()),
        visible(&log_path.display().to_string())
    );
    if let Some(code) = code {
        std::process::exit(code);
    }
    Ok(())
}

/// The workbench's terminal: raw mode, the alternate screen, bracketed paste (pastes arrive
/// as one event, into a prompt, never as a stream of key commands), and on a 16-colour
/// terminal the classic colour codes ([`Sgr16`]). A panic restores the terminal first.
fn open_terminal(sixteen_colours: bool) -> Result<Workbench> {
    use ratatui::crossterm::terminal::{enable_raw_mode, EnterAlternateScreen};
    let restore_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if crate::data::parquet::containing_panic() {
            // A damaged Parquet file: the reader turns this panic into an error message.
            return;
        }
        let _ = execute!(std::io::stdout(), DisableBracketedPaste);
        ratatui::restore();
        restore_hook(info);
    }));
    enable_raw_mode().context("setting up the terminal")?;
    let opened = execute!(
        std::io::stdout(),
        EnterAlternateScreen,
        EnableBracketedPaste
    )
    .and_then(|()| {
        let backend = CrosstermBackend::new(Sgr16::new(std::io::stdout(), sixteen_colours));
        Terminal::new(backend)
    });
    // Half set up is worse than not at all: raw mode must not outlive the error.
    opened
        .inspect_err(|_| ratatui::restore())
        .context("setting up the terminal")
}

/// The terminal the workbench draws on.
type Workbench = Terminal<CrosstermBackend<Sgr16<std::io::Stdout>>>;

/// The export file name stem: the data file's name without `.csv`/`.gz`, made safe.
fn export_stem(data: &Path) -> String {
    let name = data
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let stem = name
        .trim_end_matches(".gz")
        .trim_end_matches(".csv")
        .trim_end_matches(".tsv");
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "data".into()
    } else {
        safe
    }
}

fn forward_training(events: Receiver<TrainEvent>, tx: Sender<Event>) {
    std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            for event in events {
                if tx.send(Event::Train(event)).is_err() {
                    return;
                }
            }
        })
        .expect("spawning the event thread");
}

fn watch_signals(tx: Sender<Event>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(Event::Signal(signal)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

fn read_input(tx: Sender<Event>) {
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || loop {
            let event = match event::read() {
                Ok(TermEvent::Key(key)) if key.kind != KeyEventKind::Release => {
                    Event::Key(key, Instant::now())
                }
                Ok(TermEvent::Paste(text)) => Event::Paste(text, Instant::now()),
                Ok(TermEvent::Resize(..)) => Event::Resize,
                Ok(_) => continue,
                Err(_) => {
                    let _ = tx.send(Event::InputClosed);
                    return;
                }
            };
            if tx.send(event).is_err() {
                return;
            }
        })
        .expect("spawning the input thread");
}

/// Timings gathered for the log: key press → frame drawn, and frame render time.
#[derive(Default)]
struct Timings {
    key_latency_ms: Vec<f64>,
    frame_ms: Vec<f64>,
    /// When a slow key was last logged, and the slow keys since then not logged.
    last_slow_warning: Option<Instant>,
    slow_unlogged: usize,
}

impl Timings {
    /// Records a key answered after `ms`; logs a slow one at most every
    /// [`SLOW_KEY_WARN_EVERY`].
    fn key_answered(&mut self, ms: f64, now: Instant) {
        self.key_latency_ms.push(ms);
        if ms <= SLOW_KEY_MS {
            return;
        }
        self.slow_unlogged += 1;
        if self
            .last_slow_warning
            .is_some_and(|at| now.duration_since(at) < SLOW_KEY_WARN_EVERY)
        {
            return;
        }
        let others = match self.slow_unlogged - 1 {
            0 => String::new(),
            n => format!(" ({n} more slow keys since the last warning)"),
        };
        logging::log("WARN", &format!("key answered in {ms:.1} ms{others}"));
        self.last_slow_warning = Some(now);
        self.slow_unlogged = 0;
    }

    fn log(&mut self) {
        for (what, samples) in [
            ("key latency", &mut self.key_latency_ms),
            ("frame time", &mut self.frame_ms),
        ] {
            if samples.is_empty() {
                continue;
            }
            samples.sort_by(f64::total_cmp);
            let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
            logging::log(
                "INFO",
                &format!(
                    "{what}: n {} · p50 {:.2} ms · p99 {:.2} ms · max {:.2} ms",
                    samples.len(),
                    at(0.5),
                    at(0.99),
                    at(1.0)
                ),
            );
        }
    }
}

/// Returns `Some(exit code)` when a signal or a lost terminal ended the session.
fn main_loop(
    terminal: &mut Workbench,
    app: &mut App,
    look: &Look,
    rx: &Receiver<Event>,
    tx: &Sender<Event>,
    controls: &Sender<Control>,
    source: &ExportSource,
) -> Result<Option<i32>> {
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME_INTERVAL;
    let mut keys_waiting: Vec<Instant> = Vec::new();
    let mut timings = Timings::default();
    let result = loop {
        let wait = if dirty {
            FRAME_INTERVAL.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_secs(1)
        };
        let first = match rx.recv_timeout(wait) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => {
                // Once a second: "rescored 3s ago" and message expiry move on.
                dirty |= last_draw.elapsed() >= Duration::from_secs(1);
                None
            }
            Err(RecvTimeoutError::Disconnected) => break Ok(None),
        };
        let mut quit = None;
        // Take everything queued before drawing: a burst of events costs one frame.
        for event in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            app.tick(Instant::now());
            let effects = match event {
                Event::Key(key, at) => {
                    keys_waiting.push(at);
                    app.update(Msg::Key(key))
                }
                Event::Paste(text, at) => {
                    keys_waiting.push(at);
                    app.update(Msg::Paste(text))
                }
                Event::Resize => Vec::new(),
                Event::Train(e) => app.update(Msg::Train(e)),
                Event::Exported(result) => app.update(Msg::Exported(result)),
                Event::Signal(signal) => {
                    logging::log("INFO", &format!("signal {signal}: saving and leaving"));
                    save_before_exit(app, rx, controls);
                    quit = Some(Some(128 + signal));
                    break;
                }
                Event::InputClosed => {
                    logging::log("INFO", "the terminal is gone: saving and leaving");
                    save_before_exit(app, rx, controls);
                    quit = Some(Some(129));
                    break;
                }
            };
            dirty = true;
            for effect in effects {
                match effect {
                    Effect::Control(control) => {
                        let _ = controls.send(control);
                    }
                    Effect::Export {
                        path,
                        detectors,
                        rows,
                        reasons,
                    } => spawn_export(app, source, path, (detectors, rows, reasons), tx.clone()),
                    Effect::Quit => quit = Some(None),
                }
            }
            if quit.is_some() {
                break;
            }
        }
        if let Some(code) = quit {
            break Ok(code);
        }
        if dirty && (!keys_waiting.is_empty() || last_draw.elapsed() >= FRAME_INTERVAL) {
            app.tick(Instant::now());
            let started = Instant::now();
            let _ = execute!(terminal.backend_mut(), BeginSynchronizedUpdate);
            let drawn = terminal
                .draw(|frame| {
                    panes::draw(frame, app, look);
                    panes::guard(frame.buffer_mut());
                })
                .map(|_| ());
            let _ = execute!(terminal.backend_mut(), EndSynchronizedUpdate);
            if let Err(e) = drawn {
                // The terminal is gone (SSH drop without SIGHUP): keep what matters.
                logging::log("WARN", &format!("drawing failed: {e}"));
                save_before_exit(app, rx, controls);
                break Ok(Some(129));
            }
            let done = Instant::now();
            timings
                .frame_ms
                .push(done.duration_since(started).as_secs_f64() * 1e3);
            for at in keys_waiting.drain(..) {
                timings.key_answered(done.duration_since(at).as_secs_f64() * 1e3, done);
            }
            last_draw = done;
            dirty = false;
        }
    };
    timings.log();
    let _ = std::io::stdout().flush();
    result
}

/// On SIGHUP/SIGTERM or a lost terminal: marks are on disk already (each is synced when
/// made); write a checkpoint of a model trained here, waiting a bounded time for it.
fn save_before_exit(app: &mut App, rx: &Receiver<Event>, controls: &Sender<Control>) {
    if !(app.config.training && app.unsaved()) {
        return;
    }
    let dir = app.config.checkpoint_dir.clone();
    if controls.send(Control::SaveCheckpoint(dir.clone())).is_err() {
        return;
    }
    let deadline = Instant::now() + SAVE_ON_SIGNAL_TIMEOUT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Event::Train(TrainEvent::CheckpointSaved(saved))) => {
                logging::log("INFO", &format!("checkpoint saved to {}", saved.display()));
                return;
            }
            Ok(Event::Train(TrainEvent::CheckpointFailed(w))) => {
                logging::log("WARN", &w);
                return;
            }
            Ok(Event::Train(TrainEvent::Failed(e))) => {
                logging::log("ERROR", &e);
                return;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    logging::log(
        "WARN",
        &format!("no checkpoint written to {} in time", dir.display()),
    );
}

/// What exports read from and how they write cells.
struct ExportSource {
    data: PathBuf,
    safety: CellSafety,
}

fn spawn_export(
    app: &App,
    source: &ExportSource,
    path: PathBuf,
    (detectors, mut rows, reasons): (
        Vec<&'static str>,
        Vec<crate::triage::ExportRow>,
        Option<crate::ui::app::Reasons>,
    ),
    tx: Sender<Event>,
) {
    let format = app
        .data
        .as_ref()
        .map_or(crate::data::Format::Csv { delimiter: b',' }, |d| {
            d.loaded.table.format.clone()
        });
    let (data, safety) = (source.data.clone(), source.safety);
    std::thread::Builder::new()
        .name("export".into())
        .spawn(move || {
            if let Some(reasons) = reasons {
                reasons.fill(&mut rows);
            }
            let result = export(&data, &format, &detectors, &rows, &path, safety)
                .map(|n| (path, n))
                .map_err(|e| format!("{e:#}"));
            let _ = tx.send(Event::Exported(result));
        })
        .expect("spawning the export thread");
}

//! The workbench's state and its one update function: messages (keys, training events,
//! export results) come in, state changes, and [`Effect`]s for the outside world come out.
//! Nothing here draws or blocks, which is what makes it testable without a terminal.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::keymap::{KeyMode, Keymap};
use super::prompt::{Prompt, PromptKind, PromptOutcome};
use super::ranked::{Arrival, RankedView, RowFacts, Truth};
use super::text::thousands;
use crate::data::{ColumnKind, LoadProgress, RawTable};
use crate::logging;
use crate::text::visible;
use crate::train::{Control, DetectorKind, LoadedData, Marked, Scoring, TrainEvent};
use crate::triage::{ExportRow, Exported, Journal, Mark, Marks, RankedScore};

/// How long a status message stays in the footer.
const MESSAGE_SECS: u64 = 8;

/// What the workbench is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Loading,
    Training,
    Paused,
    /// Training finished (or the model came from a checkpoint).
    Done,
    Failed(String),
}

/// A yes/no question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    Quit,
    Overwrite(PathBuf),
}

/// Which view has the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Inspect,
    Help { from_inspect: bool },
    Prompt(Prompt),
    Confirm(Confirm),
}

/// How serious a footer message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// A footer message and when it appeared.
#[derive(Debug, Clone)]
pub struct Message {
    pub text: String,
    pub level: Level,
    pub at: Instant,
}

/// Something the runtime must do for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Control(Control),
    /// Write `rows` to `path`, with one score and rank column pair per detector named.
    Export {
        path: PathBuf,
        detectors: Vec<&'static str>,
        rows: Vec<ExportRow>,
        /// How to fill each row's `why` off the UI thread (attributions take a few
        /// milliseconds a row).
        reasons: Option<Reasons>,
    },
    Quit,
}

/// Input to [`App::update`].
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    /// Text pasted in one piece (bracketed paste): it goes into an open prompt, and is
    /// ignored elsewhere (pasted text must never run as key commands).
    Paste(String),
    Train(TrainEvent),
    /// An export finished: the path and row count, or the error.
    Exported(Result<(PathBuf, Exported), String>),
}

/// Training progress as the status line shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Ensemble member in training (1-based; 0 before the first) and how many there are.
    pub member: usize,
    pub members: usize,
    /// Epochs per member.
    pub epochs: usize,
    pub epochs_done: usize,
    pub step: usize,
    pub steps_per_epoch: usize,
    pub samples_per_sec: f64,
    pub elapsed_secs: f64,
    /// Epochs between two scorings of every row.
    pub rescore_every: Option<usize>,
    /// The epoch the member in training keeps after its training diverged (`None`: it did not).
    pub diverged_keeping: Option<usize>,
    /// Members (1-based) that score by L_D alone (EGBAD: a lost game or their fit's choice).
    pub by_discriminator: Vec<usize>,
}

impl Progress {
    /// Share of the whole run done (all members), with `within` of the current epoch.
    pub fn fraction(&self, within: f64) -> f64 {
        let total = (self.members.max(1) * self.epochs) as f64;
        (self.epochs_before() + self.epochs_done as f64 + within) / total.max(1.0)
    }

    /// Counts `member` (1-based) among those that score by L_D alone (once, whichever rule
    /// switched it).
    pub fn scores_by_discriminator(&mut self, member: usize) {
        if !self.by_discriminator.contains(&member) {
            self.by_discriminator.push(member);
        }
    }

    /// Epochs completed by the members before the current one.
    pub fn epochs_before(&self) -> f64 {
        (self.member.max(1) - 1) as f64 * self.epochs as f64
    }
}

/// One detector's training as the loss and second panes draw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    /// Names the loss series and decides the second pane.
    pub detector: DetectorKind,
    pub progress: Progress,
    /// Mean loss components of every finished epoch of the member in training.
    pub loss_history: Vec<Vec<f64>>,
    /// Running mean of the epoch in progress.
    pub loss_live: Option<Vec<f64>>,
    /// The detector's auxiliary series (DAGMM: mean φ̂) of every finished epoch.
    pub aux_history: Vec<Vec<f64>>,
}

impl RunView {
    fn new(detector: DetectorKind) -> Self {
        RunView {
            detector,
            progress: Progress::default(),
            loss_history: Vec::new(),
            loss_live: None,
            aux_history: Vec::new(),
        }
    }
}

/// One displayed column of the original data.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnView {
    /// Escaped for display.
    pub name: String,
    pub source: ColumnSource,
}

/// Where a displayed column's values live in the [`RawTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSource {
    Numeric(usize),
    Categorical(usize),
}

/// The loaded data and everything derived from it once.
pub struct DataView {
    pub loaded: Arc<LoadedData>,
    pub columns: Vec<ColumnView>,
    /// Categorical levels escaped for display, per categorical column.
    pub levels: Vec<Vec<String>>,
    /// Label names escaped for display.
    pub label_names: Vec<String>,
    /// Which label value counts as an anomaly, and the truth per row.
    pub truth: Option<Truth>,
}

/// Loss chart options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartOptions {
    /// Loss series by index (the detector names them; DAGMM: reconstruction, energy,
    /// penalty, total).
    pub shown: [bool; 4],
    pub log_scale: bool,
}

/// Settings the app starts with.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// File name to show ([`App::new`] escapes it).
    pub file: String,
    /// Stem for the default export name.
    pub export_stem: String,
    /// Label value of the anomaly class (`None`: the rarer value of a two-valued label).
    pub anomaly: Option<String>,
    pub contamination: f64,
    pub checkpoint_dir: PathBuf,
    /// Whether the model is trained here (saving makes sense) or loaded from a checkpoint.
    pub training: bool,
}

/// The whole state of the workbench.
pub struct App {
    pub config: AppConfig,
    pub keymap: Keymap,
    pub phase: Phase,
    pub now: Instant,
    pub load: Option<(LoadProgress, Instant)>,
    /// After training on a sample: rows of the file scored so far, of all.
    pub ranking: Option<(u64, u64)>,
    pub data: Option<DataView>,
    /// One per detector of the session (two side by side), never empty.
    pub runs: Vec<RunView>,
    /// Index into `runs` of the detector in training (the last one started).
    training: usize,
    /// Index into `runs` of the detector whose loss and second panes are shown.
    viewed: usize,
    /// The ranked table: scorings, filter, threshold, selection.
    pub table: RankedView,
    /// The flagged rows before a refit was asked for, and how many rows it leaves out.
    refit_from: Option<(Vec<u32>, usize)>,
    pub marks: Marks,
    journal: Option<Journal>,
    pub inspect_scroll: usize,
    /// The inspect view explains by reconstruction error instead of by contribution to
    /// the score (`tab` switches).
    pub inspect_reconstruction: bool,
    pub help_scroll: usize,
    pub chart: ChartOptions,
    pub mode: Mode,
    pub message: Option<Message>,
    last_search: Option<String>,
    /// Epochs done when the model was last saved.
    saved_epoch: Option<usize>,
    quit_after_save: bool,
}

impl App {
    /// A fresh app: loading, nothing scored yet.
    pub fn new(
        config: AppConfig,
        keymap: Keymap,
        marks: Marks,
        journal: Option<Journal>,
        now: Instant,
    ) -> Self {
        // The file name is untrusted text like any cell.
        let config = AppConfig {
            file: visible(&config.file).into_owned(),
            ..config
        };
        App {
            table: RankedView::new(config.contamination),
            config,
            keymap,
            phase: Phase::Loading,
            now,
            load: None,
            ranking: None,
            data: None,
            runs: vec![RunView::new(DetectorKind::default())],
            training: 0,
            viewed: 0,
            refit_from: None,
            marks,
            journal,
            inspect_scroll: 0,
            inspect_reconstruction: false,
            help_scroll: 0,
            chart: ChartOptions {
                shown: [true; 4],
                log_scale: false,
            },
            mode: Mode::Normal,
            message: None,
            last_search: None,
            saved_epoch: None,
            quit_after_save: false,
        }
    }

    /// Advances the app's clock (the runtime calls this before each update and frame).
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        if self
            .message
            .as_ref()
            .is_some_and(|m| now.duration_since(m.at).as_secs() >= MESSAGE_SECS)
        {
            self.message = None;
        }
    }

    /// Handles one message; returns what the runtime must do.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => self.key(key),
            Msg::Paste(text) => {
                if let Mode::Prompt(prompt) = &mut self.mode {
                    prompt.paste(&text);
                }
                Vec::new()
            }
            Msg::Train(event) => self.train_event(event),
            Msg::Exported(Ok((path, exported))) => {
                let mut text = format!(
                    "wrote {} rows to {}",
                    thousands(exported.rows),
                    visible(&path.display().to_string())
                );
                for note in &exported.notes {
                    text.push_str(" · ");
                    text.push_str(note);
                }
                self.say(Level::Info, text);
                Vec::new()
            }
            Msg::Exported(Err(e)) => {
                self.say(Level::Error, format!("export failed: {e}"));
                Vec::new()
            }
        }
    }

    /// Shows a message in the footer (and logs warnings and errors).
    pub fn say(&mut self, level: Level, text: String) {
        // Messages quote file names, columns and cells: escaped here, whatever their source.
        let text = visible(&text).into_owned();
        if level != Level::Info {
            logging::log(
                if level == Level::Error {
                    "ERROR"
                } else {
                    "WARN"
                },
                &text,
            );
        }
        self.message = Some(Message {
            text,
            level,
            at: self.now,
        });
    }

    /// Progress of the detector in training (or the last one trained).
    pub fn progress(&self) -> &Progress {
        &self.runs[self.training].progress
    }

    /// The detector in training, with its 1-based place and the number of detectors.
    pub fn training_detector(&self) -> (DetectorKind, usize, usize) {
        (
            self.runs[self.training].detector,
            self.training + 1,
            self.runs.len(),
        )
    }

    /// The detector whose loss and second panes are shown.
    pub fn viewed_run(&self) -> &RunView {
        &self.runs[self.viewed]
    }

    /// `true` while the worker is training (running or paused).
    pub fn training_active(&self) -> bool {
        matches!(self.phase, Phase::Training | Phase::Paused | Phase::Loading)
    }

    /// `true` when quitting now would lose a trained model.
    pub fn unsaved(&self) -> bool {
        self.config.training
            && self.progress().epochs_done > 0
            && self.saved_epoch != Some(self.progress().epochs_done)
    }

    /// The mark of table row `row`.
    pub fn mark_of(&self, row: usize) -> Option<Mark> {
        let table = &self.data.as_ref()?.loaded.table;
        self.marks.get(table.rows[row].number)
    }

    /// Display text of column `c` of table row `row`.
    pub fn cell(&self, row: usize, column: &ColumnView) -> String {
        let Some(data) = &self.data else {
            return String::new();
        };
        let table = &data.loaded.table;
        match column.source {
            ColumnSource::Numeric(i) => {
                let v = table.numeric[row * table.numeric_columns.len() + i];
                if v.is_nan() {
                    String::new()
                } else {
                    v.to_string()
                }
            }
            ColumnSource::Categorical(j) => {
                let code = table.categorical[row * table.categorical_columns.len() + j];
                data.levels[j]
                    .get(code as usize)
                    .cloned()
                    .unwrap_or_default()
            }
        }
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        // A terminal reports Esc and the next key read together (a script, a slow link) as
        // an Alt-key. No binding uses Alt, so it is Esc then the key, in every mode: a
        // prompt closes before the key acts, the inspect view goes back, a question is
        // dismissed. (Read as the plain key, `Esc q` typed `q` into the search line.)
        if let (KeyCode::Char(_), true) = (key.code, key.modifiers.contains(KeyModifiers::ALT)) {
            let mut effects = self.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
            effects.extend(self.key(KeyEvent::new(key.code, key.modifiers - KeyModifiers::ALT)));
            return effects;
        }
        match self.mode.clone() {
            Mode::Prompt(prompt) => self.prompt_key(prompt, key),
            Mode::Confirm(question) => self.confirm_key(question, key),
            Mode::Normal => self.act_on(KeyMode::Normal, key),
            Mode::Inspect => self.act_on(KeyMode::Inspect, key),
            Mode::Help { .. } => self.act_on(KeyMode::Help, key),
        }
    }

    fn act_on(&mut self, mode: KeyMode, key: KeyEvent) -> Vec<Effect> {
        match self.keymap.action(mode, &key) {
            Some(action) => self.apply(action),
            None => Vec::new(),
        }
    }

    /// Carries out one action.
    pub fn apply(&mut self, action: Action) -> Vec<Effect> {
        let in_inspect = self.mode == Mode::Inspect;
        let in_help = matches!(self.mode, Mode::Help { .. });
        match action {
            Action::Quit => return self.request_quit(),
            Action::Help => {
                self.help_scroll = 0;
                self.mode = Mode::Help {
                    from_inspect: in_inspect,
                };
            }
            Action::Back => {
                self.mode = match self.mode {
                    Mode::Help { from_inspect: true } => Mode::Inspect,
                    _ => Mode::Normal,
                }
            }
            Action::Down if in_help => self.help_scroll += 1,
            Action::Up if in_help => self.help_scroll = self.help_scroll.saturating_sub(1),
            Action::ToggleExplanation => {
                self.inspect_reconstruction = !self.inspect_reconstruction;
                self.inspect_scroll = 0;
            }
            Action::Down if in_inspect => self.inspect_scroll += 1,
            Action::Up if in_inspect => self.inspect_scroll = self.inspect_scroll.saturating_sub(1),
            Action::Down | Action::NextRow => self.move_selection(1),
            Action::Up | Action::PreviousRow => self.move_selection(-1),
            Action::PageDown => self.move_selection(self.table.page.get().max(1) as isize),
            Action::PageUp => self.move_selection(-(self.table.page.get().max(1) as isize)),
            Action::Top => self.move_selection(isize::MIN / 2),
            Action::Bottom => self.move_selection(isize::MAX / 2),
            Action::Inspect => {
                if self.table.selected.is_some() {
                    self.table.hold_selection();
                    self.inspect_scroll = 0;
                    self.mode = Mode::Inspect;
                } else {
                    self.say(
                        Level::Info,
                        "no row to inspect yet: rows appear once scored".into(),
                    );
                }
            }
            Action::MarkAnomaly => return self.mark(Some(Mark::Anomaly), !in_inspect),
            Action::MarkNormal => return self.mark(Some(Mark::Normal), !in_inspect),
            Action::MarkUnsure => return self.mark(Some(Mark::Unsure), !in_inspect),
            Action::ClearMark => return self.mark(None, !in_inspect),
            Action::NextUnmarked => self.next_unmarked(),
            Action::CycleFilter => {
                self.with_table(|t, facts| t.cycle_filter(facts));
                let name = self.table.filter.name();
                self.say(Level::Info, format!("showing {name} rows"));
            }
            Action::Search => {
                self.mode = Mode::Prompt(Prompt::new(PromptKind::Search, String::new()))
            }
            Action::SearchNext => match self.last_search.clone() {
                Some(q) => self.search(&q),
                None => self.say(Level::Info, "no search yet: press / to search".into()),
            },
            Action::ThresholdUp => self.step_threshold(1.0),
            Action::ThresholdDown => self.step_threshold(-1.0),
            Action::Export => return self.start_export(),
            Action::TogglePause => return self.toggle_pause(),
            Action::SaveCheckpoint => return self.save(),
            Action::Rescore => return self.rescore(),
            Action::ToggleFreeze => self.toggle_freeze(),
            Action::CycleRanking => self.cycle_ranking(),
            Action::CyclePanes => self.cycle_panes(),
            Action::ToggleSeries(i) => {
                if let Some(s) = self.chart.shown.get_mut(i) {
                    *s = !*s;
                }
            }
            Action::LogScale => self.chart.log_scale = !self.chart.log_scale,
        }
        Vec::new()
    }

    fn request_quit(&mut self) -> Vec<Effect> {
        let busy = matches!(self.phase, Phase::Training | Phase::Paused);
        if (busy || self.unsaved()) && self.mode != Mode::Confirm(Confirm::Quit) {
            self.mode = Mode::Confirm(Confirm::Quit);
            return Vec::new();
        }
        vec![Effect::Quit]
    }

    /// The question the footer shows for `confirm`.
    pub fn question(&self, confirm: &Confirm) -> String {
        match confirm {
            Confirm::Quit => {
                let why = if matches!(self.phase, Phase::Training | Phase::Paused) {
                    "training is running"
                } else {
                    "the model is not saved"
                };
                if self.config.training && self.progress().epochs_done > 0 {
                    format!(
                        "Quit? {why} (marks are saved) · y quit · s save model and quit · n stay"
                    )
                } else {
                    format!("Quit? {why} (marks are saved) · y quit · n stay")
                }
            }
            Confirm::Overwrite(path) => format!(
                "{} exists. Overwrite? y yes · n no",
                visible(&path.display().to_string())
            ),
        }
    }

    fn confirm_key(&mut self, question: Confirm, key: KeyEvent) -> Vec<Effect> {
        let KeyCode::Char(c) = key.code else {
            if key.code == KeyCode::Esc {
                self.mode = Mode::Normal;
            }
            return Vec::new();
        };
        if key.modifiers.contains(KeyModifiers::CONTROL) && c == 'c' {
            return vec![Effect::Quit];
        }
        match (question, c.to_ascii_lowercase()) {
            (Confirm::Quit, 'y' | 'q') => vec![Effect::Quit],
            (Confirm::Quit, 's') if self.config.training && self.progress().epochs_done > 0 => {
                self.mode = Mode::Normal;
                self.quit_after_save = true;
                self.save()
            }
            (Confirm::Overwrite(path), 'y') => {
                self.mode = Mode::Normal;
                self.export_to(path)
            }
            (_, 'n') => {
                self.mode = Mode::Normal;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn prompt_key(&mut self, mut prompt: Prompt, key: KeyEvent) -> Vec<Effect> {
        let text = match prompt.handle(key) {
            PromptOutcome::Editing => {
                self.mode = Mode::Prompt(prompt);
                return Vec::new();
            }
            PromptOutcome::Cancelled => {
                self.mode = Mode::Normal;
                return Vec::new();
            }
            PromptOutcome::Submitted(text) => text,
        };
        self.mode = Mode::Normal;
        if text.is_empty() {
            return Vec::new();
        }
        match prompt.kind {
            PromptKind::Search => {
                self.last_search = Some(text.clone());
                self.search(&text);
                Vec::new()
            }
            PromptKind::ExportPath => {
                let path = PathBuf::from(text);
                if path.exists() {
                    self.mode = Mode::Confirm(Confirm::Overwrite(path));
                    Vec::new()
                } else {
                    self.export_to(path)
                }
            }
        }
    }

    /// Moves the selection `delta` listed rows (the inspect view starts at its top).
    fn move_selection(&mut self, delta: isize) {
        self.table.move_selection(delta);
        self.inspect_scroll = 0;
    }

    fn train_event(&mut self, event: TrainEvent) -> Vec<Effect> {
        match event {
            TrainEvent::Loading(progress) => {
                let started = self.load.map_or(self.now, |(_, t)| t);
                self.load = Some((progress, started));
            }
            TrainEvent::Loaded(loaded) => {
                let replaced = loaded.table_id > 0;
                self.loaded(loaded);
                // A model opened from a checkpoint does not train: marks saved in an earlier
                // session go straight to its feedback layer; a replaced table's row indices
                // changed, so the marks go again.
                let marked = self.marked_rows();
                if (replaced || !self.config.training) && !marked.is_empty() {
                    return vec![Effect::Control(Control::Marks(marked))];
                }
            }
            TrainEvent::Ranking { done, rows } => self.ranking = Some((done, rows)),
            TrainEvent::Started {
                detector,
                epochs,
                members,
                steps_per_epoch,
                rescore_every,
                ..
            } => {
                self.phase = Phase::Training;
                self.training = match self.runs.iter().position(|r| r.detector == detector) {
                    Some(i) => i,
                    None => {
                        self.runs.push(RunView::new(detector));
                        self.runs.len() - 1
                    }
                };
                // The panes follow the detector that starts training.
                self.viewed = self.training;
                let p = &mut self.runs[self.training].progress;
                p.by_discriminator.clear();
                p.members = members;
                p.epochs = epochs;
                p.steps_per_epoch = steps_per_epoch;
                p.rescore_every = rescore_every;
                // Marks made in an earlier session teach from the start.
                let marked = self.marked_rows();
                if !marked.is_empty() {
                    return vec![Effect::Control(Control::Marks(marked))];
                }
            }
            TrainEvent::MemberStarted { member, members } => {
                // Each member's loss and mixture curves start afresh.
                let run = &mut self.runs[self.training];
                run.progress.member = member;
                run.progress.members = members;
                run.progress.epochs_done = 0;
                run.progress.step = 0;
                run.progress.diverged_keeping = None;
                run.loss_history.clear();
                run.aux_history.clear();
                run.loss_live = None;
            }
            TrainEvent::Step { step, losses, .. } => {
                let run = &mut self.runs[self.training];
                run.progress.step = step + 1;
                run.loss_live = Some(losses);
            }
            TrainEvent::Epoch {
                epoch,
                losses,
                aux,
                samples_per_sec,
                elapsed_secs,
            } => {
                let run = &mut self.runs[self.training];
                run.progress.epochs_done = epoch;
                run.progress.step = 0;
                run.progress.samples_per_sec = samples_per_sec;
                run.progress.elapsed_secs = elapsed_secs;
                run.loss_history.push(losses);
                run.loss_live = None;
                run.aux_history.push(aux);
            }
            TrainEvent::Warning(w) | TrainEvent::CheckpointFailed(w) => self.say(Level::Warning, w),
            TrainEvent::Diverged(divergence) => {
                let progress = &mut self.runs[self.training].progress;
                progress.diverged_keeping = Some(divergence.kept_epoch);
                progress.scores_by_discriminator(divergence.member);
                self.say(Level::Warning, divergence.to_string());
            }
            TrainEvent::ScoreChosen {
                detector,
                member,
                note,
            } => {
                if let Some(run) = self.runs.iter_mut().find(|r| r.detector == detector) {
                    run.progress.scores_by_discriminator(member);
                }
                let who = if self.runs.len() > 1 {
                    format!("{detector} ")
                } else {
                    String::new()
                };
                self.say(Level::Info, format!("{who}member {member}: {note}"));
            }
            TrainEvent::Paused => self.phase = Phase::Paused,
            TrainEvent::Resumed => self.phase = Phase::Training,
            TrainEvent::CheckpointSaved(dir) => {
                self.saved_epoch = Some(self.progress().epochs_done);
                self.say(
                    Level::Info,
                    format!(
                        "checkpoint saved to {}",
                        visible(&dir.display().to_string())
                    ),
                );
                if std::mem::take(&mut self.quit_after_save) {
                    return vec![Effect::Quit];
                }
            }
            TrainEvent::Finished { epochs_done, .. } => {
                self.phase = Phase::Done;
                let run = &mut self.runs[self.training];
                run.progress.epochs_done = epochs_done;
                run.loss_live = None;
                if !self.config.training {
                    self.saved_epoch = Some(epochs_done);
                }
            }
            TrainEvent::Scored(scoring) => self.scored(scoring),
            TrainEvent::Learned {
                detector,
                marks,
                new_in_top,
                top,
                fine_tuned,
            } => {
                let how = if fine_tuned {
                    " · networks fine-tuned"
                } else {
                    ""
                };
                let who = if self.runs.len() > 1 {
                    format!("{detector}: ")
                } else {
                    String::new()
                };
                self.say(
                    Level::Info,
                    format!(
                        "{who}{marks} mark{} learned · {new_in_top} new row{} in the top {top}{how}",
                        if marks == 1 { "" } else { "s" },
                        if new_in_top == 1 { "" } else { "s" }
                    ),
                );
            }
            TrainEvent::Failed(e) => {
                let e = visible(&e).into_owned();
                self.say(Level::Error, e.clone());
                self.phase = Phase::Failed(e);
            }
        }
        Vec::new()
    }

    fn loaded(&mut self, loaded: Arc<LoadedData>) {
        if let Some(old) = self.data.as_ref().filter(|_| loaded.table_id > 0) {
            // The rows changed: the selection follows its record into the new table.
            let record = self
                .table
                .selected
                .map(|row| old.loaded.table.rows[row as usize].number);
            let rows = &loaded.table.rows;
            let selected = record
                .and_then(|n| rows.binary_search_by_key(&n, |r| r.number).ok())
                .map(|i| i as u32);
            self.table.new_rows(selected);
            self.refit_from = None;
            self.ranking = None;
        } else if !loaded.detectors.is_empty() {
            self.runs = loaded.detectors.iter().map(|&d| RunView::new(d)).collect();
            (self.training, self.viewed) = (0, 0);
        }
        let table = &loaded.table;
        let columns = display_columns(table);
        let levels = table
            .levels
            .iter()
            .map(|l| l.iter().map(|s| visible(s).into_owned()).collect())
            .collect();
        let label_names = table
            .labels
            .as_ref()
            .map(|l| l.names.iter().map(|s| visible(s).into_owned()).collect())
            .unwrap_or_default();
        let truth = self.truth(table);
        for note in &loaded.notes {
            logging::log("NOTE", note);
        }
        if let Some(note) = loaded.notes.first() {
            self.say(Level::Info, visible(note).into_owned());
        }
        self.data = Some(DataView {
            loaded,
            columns,
            levels,
            label_names,
            truth,
        });
    }

    /// The label value treated as the anomaly class: `--anomaly`, else the rarer of two.
    fn truth(&mut self, table: &RawTable) -> Option<Truth> {
        let labels = table.labels.as_ref()?;
        let positive = match &self.config.anomaly {
            Some(name) => match labels.names.iter().position(|n| n == name) {
                Some(code) => code as u32,
                None => {
                    self.say(
                        Level::Warning,
                        format!(
                            "--anomaly '{}' is not a value of the label column: no metrics",
                            visible(name)
                        ),
                    );
                    return None;
                }
            },
            None => match labels.rarer_of_two() {
                Some(rarer) => rarer,
                None => {
                    self.say(
                        Level::Info,
                        format!(
                            "label '{}' has {} values: pass --anomaly VALUE for live metrics",
                            visible(&labels.column),
                            labels.names.len()
                        ),
                    );
                    return None;
                }
            },
        };
        let is_anomaly: Vec<bool> = labels.values.iter().map(|&v| v == positive).collect();
        let positives = is_anomaly.iter().filter(|&&a| a).count();
        Some(Truth {
            positive: visible(&labels.names[positive as usize]).into_owned(),
            is_anomaly,
            positives,
        })
    }

    /// Runs `f` on the table with what the app knows about rows (marks, labels).
    fn with_table<R>(&mut self, f: impl FnOnce(&mut RankedView, &RowFacts) -> R) -> R {
        let data = self.data.as_ref();
        let marks = &self.marks;
        let marked = |row: u32| {
            data.is_some_and(|d| {
                marks
                    .get(d.loaded.table.rows[row as usize].number)
                    .is_some()
            })
        };
        let facts = RowFacts {
            marked: &marked,
            truth: data.and_then(|d| d.truth.as_ref()),
        };
        f(&mut self.table, &facts)
    }

    fn scored(&mut self, scoring: Arc<Scoring>) {
        let now = self.now;
        let detector = scoring.detector;
        // The scores say which members use L_D alone as fitted for them (refits and
        // checkpoints included).
        if let Some(run) = self.runs.iter_mut().find(|r| r.detector == detector) {
            run.progress.by_discriminator = scoring.by_discriminator.clone();
        }
        if self.with_table(|t, facts| t.receive(scoring, now, facts)) == Arrival::HeldBack {
            self.say(
                Level::Info,
                "new scores held back: the table is frozen (F)".into(),
            );
            return;
        }
        // Side by side, a refit rescores both: report once the ranking detector's scores are in.
        if self.table.shown().is_some_and(|s| s.detector() == detector) {
            self.report_refit();
        }
    }

    /// Recomputes the listed rows and the metrics after marks changed.
    pub fn refresh_view(&mut self) {
        self.with_table(|t, facts| t.refresh(facts));
    }

    fn mark(&mut self, mark: Option<Mark>, advance: bool) -> Vec<Effect> {
        let (Some(row), Some(data)) = (self.table.selected, &self.data) else {
            return Vec::new();
        };
        let number = data.loaded.table.rows[row as usize].number;
        self.marks.set(number, mark);
        if let Some(journal) = &mut self.journal {
            if let Err(e) = journal.record(number, mark) {
                self.say(Level::Error, format!("mark not saved: {e:#}"));
            }
        }
        self.with_table(|t, facts| t.after_mark(row, advance, facts));
        self.inspect_scroll = 0;
        let what = mark.map_or("cleared", Mark::name);
        self.say(Level::Info, format!("row {number}: {what}"));
        // Training learns the marks from its next step; after training the worker's
        // feedback layer answers at once and a fine-tune follows.
        match self.phase {
            Phase::Training | Phase::Paused | Phase::Done => {
                vec![Effect::Control(Control::Marks(self.marked_rows()))]
            }
            _ => Vec::new(),
        }
    }

    /// Rows (0-based, file order) marked anomalous and marked normal: what training and the
    /// feedback layer learn from.
    pub fn marked_rows(&self) -> Marked {
        Marked {
            anomalies: self.rows_marked(Mark::Anomaly),
            normals: self.rows_marked(Mark::Normal),
            table: self.data.as_ref().map_or(0, |d| d.loaded.table_id),
        }
    }

    /// Rows (0-based, file order) marked anomalous: what refits leave out.
    pub fn anomaly_rows(&self) -> Vec<u32> {
        self.rows_marked(Mark::Anomaly)
    }

    /// Rows (0-based, file order) with `mark`.
    fn rows_marked(&self, mark: Mark) -> Vec<u32> {
        let Some(data) = &self.data else {
            return Vec::new();
        };
        let rows = &data.loaded.table.rows;
        let mut out: Vec<u32> = self
            .marks
            .iter()
            .filter(|(_, m)| *m == mark)
            .filter_map(|(number, _)| rows.binary_search_by_key(&number, |r| r.number).ok())
            .map(|i| i as u32)
            .collect();
        out.sort_unstable();
        out
    }

    fn next_unmarked(&mut self) {
        if self.with_table(|t, facts| t.next_unmarked(facts)).is_none() {
            self.say(Level::Info, "no unmarked row below".into());
        }
    }

    fn step_threshold(&mut self, direction: f64) {
        self.with_table(|t, facts| t.step_threshold(direction, facts));
        self.say(
            Level::Info,
            format!(
                "threshold {:.1} %: {} rows flagged",
                self.table.contamination * 100.0,
                thousands(self.table.flagged_count())
            ),
        );
    }

    fn search(&mut self, query: &str) {
        let Some(data) = &self.data else { return };
        if self.table.shown().is_none() {
            return;
        }
        let table = &data.loaded.table;
        let number = query.trim_start_matches('#').parse::<u64>().ok();
        if let Some(number) = number.filter(|_| query.starts_with('#')) {
            return self.jump_to_record(number);
        }
        let needle = query.to_lowercase();
        let value = query.parse::<f32>().ok();
        let level_hits: Vec<Vec<bool>> = data
            .levels
            .iter()
            .map(|levels| {
                levels
                    .iter()
                    .map(|l| l.to_lowercase().contains(&needle))
                    .collect()
            })
            .collect();
        let label_hits: Vec<bool> = data
            .label_names
            .iter()
            .map(|l| l.to_lowercase().contains(&needle))
            .collect();
        let (nc, cc) = (table.numeric_columns.len(), table.categorical_columns.len());
        let matches = |row: u32| -> bool {
            let row = row as usize;
            table.categorical[row * cc..(row + 1) * cc]
                .iter()
                .enumerate()
                .any(|(j, &code)| level_hits[j].get(code as usize).copied().unwrap_or(false))
                || value.is_some_and(|v| table.numeric[row * nc..(row + 1) * nc].contains(&v))
                || table
                    .labels
                    .as_ref()
                    .is_some_and(|l| label_hits[l.values[row] as usize])
                || number == Some(table.rows[row].number)
        };
        let found = self
            .table
            .find_next(matches)
            .map(|row| table.rows[row as usize].number);
        match found {
            Some(number) => self.say(
                Level::Info,
                format!("'{}': row {number} (N: next match)", visible(query)),
            ),
            None => self.say(
                Level::Info,
                format!("'{}': no match in the listed rows", visible(query)),
            ),
        }
    }

    fn jump_to_record(&mut self, number: u64) {
        let Some(data) = &self.data else { return };
        match data
            .loaded
            .table
            .rows
            .binary_search_by_key(&number, |r| r.number)
        {
            Ok(row) => self.with_table(|t, facts| t.reveal(row as u32, facts)),
            Err(_) => self.say(Level::Info, format!("no row {number} in the data")),
        }
    }

    fn start_export(&mut self) -> Vec<Effect> {
        if self.table.shown().is_none() {
            self.say(
                Level::Info,
                "nothing to export yet: rows appear once scored".into(),
            );
            return Vec::new();
        }
        let default = format!("{}-triage.csv", self.config.export_stem);
        self.mode = Mode::Prompt(Prompt::new(PromptKind::ExportPath, default));
        Vec::new()
    }

    /// The rows an export writes: flagged or marked, most anomalous first, with each
    /// detector's score and rank (the ranking one first; its name heads the list).
    pub fn export_rows(&self) -> (Vec<&'static str>, Vec<ExportRow>) {
        let (Some(shown), Some(data)) = (self.table.shown(), &self.data) else {
            return (Vec::new(), Vec::new());
        };
        let scorings: Vec<&Scoring> = std::iter::once(shown)
            .chain(self.table.other())
            .map(|s| s.scoring.as_ref())
            .collect();
        let detectors = scorings.iter().map(|s| s.detector.name()).collect();
        let flagged = self.table.flagged_count();
        let table = &data.loaded.table;
        let rows = shown
            .scoring
            .order
            .iter()
            .enumerate()
            .filter_map(|(position, &row)| {
                let record = table.rows[row as usize].number;
                let mark = self.marks.get(record);
                (position < flagged || mark.is_some()).then(|| ExportRow {
                    record,
                    scores: scorings
                        .iter()
                        .map(|s| RankedScore {
                            score: s.scores[row as usize],
                            rank: s.rank(row as usize),
                        })
                        .collect(),
                    mark,
                    why: Vec::new(),
                })
            })
            .collect();
        (detectors, rows)
    }

    /// What the export thread needs to explain `rows` by the ranking detector's score.
    fn reasons(&self, rows: &[ExportRow]) -> Option<Reasons> {
        let (shown, data) = (self.table.shown()?, self.data.as_ref()?);
        let by_record: HashMap<u64, usize> = data
            .loaded
            .table
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.number, i))
            .collect();
        Some(Reasons {
            scoring: shown.scoring.clone(),
            columns: data.loaded.feature_columns.clone(),
            rows: rows
                .iter()
                .map(|r| by_record.get(&r.record).copied())
                .collect::<Option<Vec<_>>>()?,
        })
    }

    fn export_to(&mut self, path: PathBuf) -> Vec<Effect> {
        let (detectors, rows) = self.export_rows();
        if rows.is_empty() {
            self.say(Level::Info, "nothing flagged or marked to export".into());
            return Vec::new();
        }
        self.say(
            Level::Info,
            format!("exporting {} rows…", thousands(rows.len())),
        );
        let reasons = self.reasons(&rows);
        vec![Effect::Export {
            path,
            detectors,
            rows,
            reasons,
        }]
    }

    fn toggle_pause(&mut self) -> Vec<Effect> {
        match self.phase {
            Phase::Training => vec![Effect::Control(Control::Pause)],
            Phase::Paused => vec![Effect::Control(Control::Resume)],
            _ => {
                self.say(Level::Info, "training is not running".into());
                Vec::new()
            }
        }
    }

    fn save(&mut self) -> Vec<Effect> {
        if !self.config.training {
            self.say(
                Level::Info,
                "the model comes from a checkpoint: nothing new to save".into(),
            );
            return Vec::new();
        }
        if matches!(self.phase, Phase::Loading | Phase::Failed(_)) {
            self.say(Level::Info, "no model to save yet".into());
            return Vec::new();
        }
        self.say(Level::Info, "saving checkpoint…".into());
        vec![Effect::Control(Control::SaveCheckpoint(
            self.config.checkpoint_dir.clone(),
        ))]
    }

    /// Refits the scoring with the marks (rows marked anomalous left out) and rescores.
    fn rescore(&mut self) -> Vec<Effect> {
        match self.phase {
            Phase::Training | Phase::Paused | Phase::Done => {
                let excluded = self.anomaly_rows();
                self.say(
                    Level::Info,
                    format!(
                        "refitting without {} row(s) marked anomaly, rescoring every row…",
                        excluded.len()
                    ),
                );
                self.refit_from = self
                    .table
                    .shown()
                    .map(|_| (self.table.flagged_rows(), excluded.len()));
                vec![
                    Effect::Control(Control::Marks(self.marked_rows())),
                    Effect::Control(Control::Rescore),
                ]
            }
            _ => {
                self.say(Level::Info, "no model to refit yet".into());
                Vec::new()
            }
        }
    }

    /// After a refit: how many of the flagged rows are new to the flagged set.
    fn report_refit(&mut self) {
        let Some((before, excluded)) = self.refit_from.take() else {
            return;
        };
        let flagged = self.table.flagged_count();
        let changed = self.table.newly_flagged(&before);
        self.say(
            Level::Info,
            format!(
                "refit without {excluded} row(s) marked anomaly: {changed} of {flagged} flagged rows changed"
            ),
        );
    }

    fn cycle_ranking(&mut self) {
        match self.with_table(|t, facts| t.cycle_rank_by(facts)) {
            Some(detector) => self.say(Level::Info, format!("ranked by {detector}'s score")),
            None if self.runs.len() > 1 => self.say(
                Level::Info,
                "one detector has scored so far: the other ranks once it has".into(),
            ),
            None => self.say(
                Level::Info,
                "one detector: start with --detector dagmm,egbad to compare two".into(),
            ),
        }
    }

    fn cycle_panes(&mut self) {
        if self.runs.len() < 2 {
            self.say(
                Level::Info,
                "one detector: start with --detector dagmm,egbad to compare two".into(),
            );
            return;
        }
        self.viewed = (self.viewed + 1) % self.runs.len();
        let detector = self.runs[self.viewed].detector;
        self.say(Level::Info, format!("showing {detector}'s panes"));
    }

    fn toggle_freeze(&mut self) {
        let now = self.now;
        let showed = self.with_table(|t, facts| t.toggle_freeze(now, facts));
        let text = if self.table.frozen {
            "table frozen: new scores wait until F"
        } else if showed {
            "table unfrozen: showing the newest scores"
        } else {
            "table unfrozen"
        };
        self.say(Level::Info, text.into());
    }
}

/// The rows of an export to explain, and what explains them.
#[derive(Clone)]
pub struct Reasons {
    pub scoring: Arc<Scoring>,
    pub columns: Vec<(String, std::ops::Range<usize>)>,
    /// The table row of each exported row, in the export's order.
    pub rows: Vec<usize>,
}

impl std::fmt::Debug for Reasons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reasons for {} rows", self.rows.len())
    }
}

/// The same rows explained by the same scoring.
impl PartialEq for Reasons {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.scoring, &other.scoring)
            && self.rows == other.rows
            && self.columns == other.columns
    }
}

impl Reasons {
    /// Fills each row's top three reasons.
    pub fn fill(&self, rows: &mut [ExportRow]) {
        for (row, &index) in rows.iter_mut().zip(&self.rows) {
            row.why = self.scoring.top_reasons(index, &self.columns, 3);
        }
    }
}

/// The columns of the original file the table and inspect view show, in file order.
fn display_columns(table: &RawTable) -> Vec<ColumnView> {
    let mut columns = Vec::new();
    for (name, kind) in &table.schema.columns {
        let source = match kind {
            ColumnKind::Numeric => table
                .numeric_columns
                .iter()
                .position(|c| c == name)
                .map(ColumnSource::Numeric),
            ColumnKind::Categorical => table
                .categorical_columns
                .iter()
                .position(|c| c == name)
                .map(ColumnSource::Categorical),
            ColumnKind::Label | ColumnKind::Ignored => None,
        };
        if let Some(source) = source {
            columns.push(ColumnView {
                name: visible(name).into_owned(),
                source,
            });
        }
    }
    columns
}

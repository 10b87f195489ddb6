//! Training on its own thread: the UI (or the CLI) sends [`Control`]s and receives
//! [`TrainEvent`]s, and never waits on a training step.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::checkpoint::{self, CheckpointMeta};
use super::events::{Control, Divergence, Marked, TrainEvent};
use super::feedback::FeedbackLayer;
use super::scoring::{FileRanks, Scoring};
use super::trainer::{fine_tune_ensemble, member_of, StepView, TrainConfig, Trainer};
use crate::data::{Encoder, Matrix, ReadOptions};
use crate::model::{Detector, DetectorConfig, Ensemble, RowDetail};

/// Minimum time between two `Step` events.
const STEP_EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// What a finished training run hands back.
pub struct Trained {
    /// Every member trained (a stop leaves the member in training as it stood).
    pub ensemble: Ensemble,
    /// Ensemble score of every training row (file order).
    pub scores: Vec<f64>,
    pub train: TrainConfig,
    /// When the rows are a sample of a larger file: the other rows' scores at the last
    /// pass over the file, so the scorings sent rank among every row.
    pub file: Option<Arc<FileRanks>>,
}

impl Trained {
    /// The checkpoint metadata for this ensemble with the data transformation that fed it.
    pub fn meta(&self, read: &ReadOptions, encoder: &Encoder) -> CheckpointMeta {
        CheckpointMeta::new(&self.ensemble, &self.train, read, encoder)
    }
}

/// How to describe the data in checkpoints the worker writes on request.
#[derive(Clone)]
pub struct DataContext {
    pub read: ReadOptions,
    pub encoder: Encoder,
}

/// How often a workbench session scores every row while training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rescoring {
    /// Never (headless training scores once itself).
    #[default]
    Never,
    /// About ten times per model, decided once the epoch count is known.
    Auto,
    /// Every this many epochs (at least 1).
    Every(usize),
}

impl Rescoring {
    /// Epochs between two scorings for a run of `epochs` epochs (`None`: never).
    fn interval(self, epochs: usize) -> Option<usize> {
        match self {
            Rescoring::Never => None,
            Rescoring::Auto => Some(epochs.div_ceil(10).max(1)),
            Rescoring::Every(n) => Some(n.max(1)),
        }
    }
}

/// What the worker does besides training.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerOptions {
    /// Score every row and send [`TrainEvent::Scored`] while training and at the end; a
    /// session that rescores is a workbench session, which also serves refits afterwards.
    pub rescoring: Rescoring,
    /// Wait for [`Control::Resume`] before the first step.
    pub start_paused: bool,
}

impl WorkerOptions {
    /// A workbench session: after training, the worker keeps serving rescores (refits with
    /// the analyst's marks) and saves until told to stop.
    pub(crate) fn serves_after_training(&self) -> bool {
        self.rescoring != Rescoring::Never
    }
}

/// The caller's side of a running worker; the thread returns `T` (a headless run: one
/// [`Trained`]; a workbench session: one per detector).
pub struct WorkerHandle<T = Trained> {
    pub events: Receiver<TrainEvent>,
    pub controls: Sender<Control>,
    pub thread: JoinHandle<Result<T>>,
}

/// Starts training `data` on a new thread (headless: no scoring events).
pub fn spawn(
    model: DetectorConfig,
    train: TrainConfig,
    data: Arc<Matrix>,
    context: DataContext,
) -> WorkerHandle {
    spawn_thread(move |events, controls| {
        let mut end = train_loop(
            vec![(model, train)],
            data,
            &context,
            WorkerOptions::default(),
            events,
            controls,
        )?;
        end.trained
            .pop()
            .ok_or_else(|| anyhow::anyhow!("stopped before training"))
    })
}

/// Runs `body` on the training thread with a fresh channel pair; an error is also sent
/// as [`TrainEvent::Failed`].
pub(crate) fn spawn_thread<T: Send + 'static>(
    body: impl FnOnce(&Sender<TrainEvent>, &Receiver<Control>) -> Result<T> + Send + 'static,
) -> WorkerHandle<T> {
    let (event_tx, events) = channel();
    let (controls, control_rx) = channel();
    let thread = std::thread::Builder::new()
        .name("dagmm-train".into())
        .spawn(move || {
            let result = body(&event_tx, &control_rx);
            if let Err(e) = &result {
                let _ = event_tx.send(TrainEvent::Failed(format!("{e:#}")));
            }
            result
        })
        .expect("spawning the training thread");
    WorkerHandle {
        events,
        controls,
        thread,
    }
}

/// One detector to train: its networks and its training settings.
pub type DetectorPlan = (DetectorConfig, TrainConfig);

/// The training loop of a worker: each detector of `plans` in turn (side by side: one
/// after the other on the same rows), each `train.members` members one after another,
/// each its epochs with events, controls served between steps. Returns one [`Trained`] per
/// detector trained (a stop skips the detectors not started).
pub(crate) fn train_loop(
    plans: Vec<DetectorPlan>,
    data: Arc<Matrix>,
    context: &DataContext,
    options: WorkerOptions,
    events: &Sender<TrainEvent>,
    controls: &Receiver<Control>,
) -> Result<TrainLoopEnd> {
    let side_by_side = plans.len() > 1;
    let mut inbox = Inbox::default();
    let mut done: Vec<Trained> = Vec::new();
    let mut epochs_done = 0;
    for (i, (model, train)) in plans.into_iter().enumerate() {
        if inbox.stop {
            let _ = events.send(TrainEvent::Warning(format!(
                "stopped: {} was not trained",
                model.kind()
            )));
            continue;
        }
        let mut run = DetectorRun {
            data: &data,
            context,
            events,
            controls,
            rescore_every: options.rescoring.interval(train.epochs),
            start_paused: options.start_paused && i == 0,
            side_by_side,
        };
        let trained = run.train(model, train, &mut inbox, &mut done)?;
        epochs_done = trained.ensemble.epochs_done();
        done.push(trained);
    }
    let _ = events.send(TrainEvent::Finished {
        epochs_done,
        stopped_early: inbox.stop,
    });
    // Saves asked for while the last epoch ran (e.g. on quit) are written now.
    for dir in std::mem::take(&mut inbox.saves) {
        let _ = events.send(save_checkpoint(&dir, &parts(&done), side_by_side, context));
    }
    Ok(TrainLoopEnd {
        trained: done,
        stopped: inbox.stop,
    })
}

/// How [`train_loop`] ended.
pub(crate) struct TrainLoopEnd {
    /// One per detector trained.
    pub trained: Vec<Trained>,
    /// Told to stop: nothing more is served.
    pub stopped: bool,
}

/// What training one detector needs besides its plan.
struct DetectorRun<'a> {
    data: &'a Arc<Matrix>,
    context: &'a DataContext,
    events: &'a Sender<TrainEvent>,
    controls: &'a Receiver<Control>,
    rescore_every: Option<usize>,
    start_paused: bool,
    side_by_side: bool,
}

impl DetectorRun<'_> {
    /// Trains one detector's ensemble; `earlier` holds the detectors trained before it in
    /// this session, which rescores and saves serve too.
    fn train(
        &mut self,
        model: DetectorConfig,
        train: TrainConfig,
        inbox: &mut Inbox,
        earlier: &mut [Trained],
    ) -> Result<Trained> {
        let (data, events, controls) = (self.data, self.events, self.controls);
        let members = train.members.max(1);
        let epochs = train.epochs;
        let rescore_every = self.rescore_every;
        let mut trainer = Trainer::new(model.clone(), train.member(0), data.rows);
        let kind = model.kind();
        let _ = events.send(TrainEvent::Started {
            detector: kind,
            rows: data.rows,
            features: data.cols,
            epochs,
            members,
            steps_per_epoch: trainer.steps_per_epoch(),
            rescore_every,
        });
        let started = Instant::now();
        let mut scorer = Scorer {
            data,
            context: self.context,
            events,
            train: &train,
            finished: Ensemble::default(),
            finished_sum: vec![0.0; data.rows],
            keep: inbox.carried.keep(data.rows),
            marks: inbox.carried.clone(),
            keep_changed: !inbox.carried.is_empty(),
            earlier,
            earlier_stale: false,
            side_by_side: self.side_by_side,
        };
        if self.start_paused {
            inbox.take(Control::Pause, events);
            inbox.settle(controls, events, |inbox| scorer.serve(inbox, &trainer));
        }
        for member in 0..members {
            if member > 0 {
                if inbox.stop {
                    break;
                }
                trainer = Trainer::new(model.clone(), train.member(member), data.rows);
                // A new trainer takes every row: tell it which are left out.
                scorer.keep_changed |= !scorer.marks.is_empty();
            }
            let _ = events.send(TrainEvent::MemberStarted {
                member: member + 1,
                members,
            });
            for epoch in 1..=epochs {
                if inbox.stop {
                    break;
                }
                if let Some(marked) = inbox.marks.take() {
                    scorer.mark(&marked);
                }
                if std::mem::take(&mut scorer.keep_changed) {
                    trainer.roles().set_marks(data.rows, &scorer.marks);
                }
                let roles = trainer.roles().clone();
                let mut last_event = Instant::now();
                let summary = trainer.epoch(data, |view| {
                    if last_event.elapsed() >= STEP_EVENT_INTERVAL {
                        last_event = Instant::now();
                        let _ = events.send(TrainEvent::Step {
                            epoch,
                            step: view.step,
                            losses: view.losses.clone(),
                        });
                    }
                    inbox.settle(controls, events, |inbox| scorer.serve_view(inbox, view));
                    // A mark reaches the next step.
                    if std::mem::take(&mut scorer.keep_changed) {
                        roles.set_marks(data.rows, &scorer.marks);
                    }
                    !inbox.stop
                })?;
                if summary.dropped_steps > 0 {
                    let _ = events.send(TrainEvent::Warning(format!(
                    "member {}, epoch {epoch}: {} step(s) had a non-finite loss or update and were dropped",
                    member + 1,
                    summary.dropped_steps
                )));
                }
                if summary.max_repair > 0.0 {
                    let _ = events.send(TrainEvent::Warning(format!(
                        "member {}, epoch {epoch}: {}",
                        member + 1,
                        kind.describe_repair(summary.max_repair)
                    )));
                }
                if let Some(reason) = summary.diverged.clone() {
                    let _ = events.send(TrainEvent::Diverged(Divergence {
                        member: member + 1,
                        epoch,
                        reason,
                        kept_epoch: summary.kept_epoch,
                    }));
                }
                let _ = events.send(TrainEvent::Epoch {
                    epoch,
                    losses: summary.losses,
                    aux: summary.aux,
                    samples_per_sec: summary.samples as f64 / summary.seconds.max(1e-9),
                    elapsed_secs: started.elapsed().as_secs_f64(),
                });
                let due = rescore_every.is_some_and(|n| epoch % n == 0 && epoch < epochs);
                inbox.rescore |= due;
                inbox.settle(controls, events, |inbox| {
                    inbox.rescore &= !inbox.stop;
                    scorer.serve(inbox, &trainer)
                });
            }
            // The member as it stands joins the ensemble (on a stop too: it is what exists).
            let detail = scorer.finish(&trainer)?;
            // The ensemble so far is shown as each member finishes.
            if rescore_every.is_some() {
                scorer.send_scoring(scorer.mean_with(None), detail, &trainer.view(), None);
            }
            if inbox.stop {
                break;
            }
        }
        inbox.carried = scorer.marks.clone();
        Ok(Trained {
            scores: scorer.mean_with(None),
            ensemble: scorer.finished,
            train,
            file: None,
        })
    }
}

/// How long after the last mark the networks are fine-tuned with the marks (a burst of
/// marks costs one fine-tune; the feedback layer answers each mark at once meanwhile).
const FINE_TUNE_DELAY: Duration = Duration::from_millis(700);
/// The unmarked rows whose change `Learned` reports: the top of the table.
const LEARNED_TOP: usize = 50;

/// After training (or on opening a checkpoint): serves saves, rescores that refit every
/// member's mixture and calibration over the rows not marked anomalous, and marks, until
/// told to stop. A change of the marks is learnt at once by each detector's feedback layer
/// (new scores within a frame or two), and, [`FINE_TUNE_DELAY`] after the last mark, by
/// [`FINE_TUNE_STEPS`] steps of every member from its current weights. Returns the
/// ensembles (one per detector) as last refitted.
pub(crate) fn serve_trained(
    mut trained: Vec<Trained>,
    side_by_side: bool,
    table: ServedTable,
    context: &DataContext,
    events: &Sender<TrainEvent>,
    controls: &Receiver<Control>,
) -> Result<Vec<Trained>> {
    let data = &table.data;
    let mut learner = Learner {
        marks: Marked::default(),
        layers: trained.iter().map(|_| None).collect(),
        shown: trained.iter().map(|_| None).collect(),
        fine_tune_due: false,
    };
    let mut pending = table.pending.into_iter();
    loop {
        let control = if let Some(control) = pending.next() {
            control
        } else if learner.fine_tune_due {
            match controls.recv_timeout(FINE_TUNE_DELAY) {
                Ok(control) => control,
                Err(RecvTimeoutError::Timeout) => {
                    learner.fine_tune(&mut trained, data, events);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match controls.recv() {
                Ok(control) => control,
                Err(_) => break,
            }
        };
        match control {
            Control::Stop => break,
            // Made on a table this one replaced: the UI sends them again for this one.
            Control::Marks(marked) if marked.table != table.id => {}
            Control::Marks(marked) => learner.learn(marked, &mut trained, data, events),
            Control::SaveCheckpoint(dir) => {
                let _ = events.send(save_checkpoint(
                    &dir,
                    &parts(&trained),
                    side_by_side,
                    context,
                ));
            }
            Control::Rescore => {
                let keep = learner.marks.keep(data.rows);
                let slots = learner.layers.iter_mut().zip(&mut learner.shown);
                for (t, (layer, shown)) in trained.iter_mut().zip(slots) {
                    if let Some(scoring) =
                        rescore_trained(t, keep.as_deref(), layer.as_mut(), data, events)
                    {
                        *shown = Some(scoring);
                    }
                }
            }
            Control::Pause | Control::Resume => {}
        }
    }
    Ok(trained)
}

/// The table [`serve_trained`] serves: its encoded rows, its id (see
/// [`crate::train::LoadedData::table_id`]), and controls that arrived before serving began.
pub(crate) struct ServedTable {
    pub data: Arc<Matrix>,
    pub id: u32,
    pub pending: Vec<Control>,
}

/// The marks after training, and what learns them.
struct Learner {
    marks: Marked,
    /// One per detector, grown at its first mark.
    layers: Vec<Option<FeedbackLayer>>,
    /// The last scoring sent per detector since its networks last changed: a mark the
    /// layer alone learns reuses its detail instead of scoring every row again.
    shown: Vec<Option<Arc<Scoring>>>,
    /// The marks changed since the last fine-tune.
    fine_tune_due: bool,
}

impl Learner {
    /// Takes new marks: each feedback layer learns them and the new scores go out.
    fn learn(
        &mut self,
        marked: Marked,
        trained: &mut [Trained],
        data: &Arc<Matrix>,
        events: &Sender<TrainEvent>,
    ) {
        if marked == self.marks {
            return;
        }
        self.marks = marked;
        self.fine_tune_due = true;
        let pairs = self.marks.pairs();
        let slots = self.layers.iter_mut().zip(&mut self.shown);
        for (t, (slot, shown)) in trained.iter().zip(slots) {
            let layer =
                slot.get_or_insert_with(|| FeedbackLayer::new(&t.scores, data, t.train.seed));
            let before = layer.scores();
            layer.learn(&pairs);
            let after = layer.scores();
            report(&self.marks, t, &before, &after, false, events);
            *shown = Some(match shown {
                Some(last) => {
                    let scoring = Arc::new(last.with_scores(after));
                    let _ = events.send(TrainEvent::Scored(scoring.clone()));
                    scoring
                }
                None => send_scores(t, after, data, events),
            });
        }
    }

    /// Fine-tunes every member of every detector with the marks, refits, and gives the
    /// layers the new scores.
    fn fine_tune(
        &mut self,
        trained: &mut [Trained],
        data: &Arc<Matrix>,
        events: &Sender<TrainEvent>,
    ) {
        self.fine_tune_due = false;
        let slots = self.layers.iter_mut().zip(&mut self.shown);
        for (t, (slot, shown)) in trained.iter_mut().zip(slots) {
            let before = slot
                .as_ref()
                .map_or_else(|| t.scores.clone(), |l| l.scores());
            let tuned = fine_tune_ensemble(&mut t.ensemble, &t.train, data, &self.marks);
            let calibrated = match tuned {
                Ok(scores) => scores,
                Err(e) => {
                    let _ = events.send(TrainEvent::Warning(format!("fine-tuning failed: {e:#}")));
                    return;
                }
            };
            t.scores = calibrated;
            if let Some(layer) = slot {
                layer.set_base(&t.scores);
            }
            let after = slot
                .as_ref()
                .map_or_else(|| t.scores.clone(), |l| l.scores());
            report(&self.marks, t, &before, &after, true, events);
            *shown = Some(send_scores(t, after, data, events));
        }
    }
}

/// Sends what learning `marks` changed at the top of the unmarked rows.
fn report(
    marks: &Marked,
    t: &Trained,
    before: &[f64],
    after: &[f64],
    fine_tuned: bool,
    events: &Sender<TrainEvent>,
) {
    let marked: std::collections::HashSet<usize> =
        marks.pairs().into_iter().map(|(r, _)| r).collect();
    let top = |scores: &[f64]| -> std::collections::HashSet<usize> {
        super::scoring::ranking(scores)
            .into_iter()
            .map(|r| r as usize)
            .filter(|r| !marked.contains(r))
            .take(LEARNED_TOP)
            .collect()
    };
    let (was, now) = (top(before), top(after));
    let Some(detector) = t.ensemble.kind() else {
        return;
    };
    let _ = events.send(TrainEvent::Learned {
        detector,
        marks: marks.len(),
        new_in_top: now.difference(&was).count(),
        top: LEARNED_TOP,
        fine_tuned,
    });
}

/// Sends the scoring of `trained`'s networks under `scores` (the feedback layer's, or the
/// ensemble's) and returns it.
pub(crate) fn send_scores(
    trained: &Trained,
    scores: Vec<f64>,
    data: &Arc<Matrix>,
    events: &Sender<TrainEvent>,
) -> Arc<Scoring> {
    let scoring = Arc::new(
        Scoring::of_ensemble(&trained.ensemble, scores, data.clone()).within(trained.file.clone()),
    );
    let _ = events.send(TrainEvent::Scored(scoring.clone()));
    scoring
}

/// Refits `trained` over the `keep` rows and sends (and returns) its new scoring, under
/// its feedback layer's marks when it has one.
fn rescore_trained(
    trained: &mut Trained,
    keep: Option<&[bool]>,
    layer: Option<&mut FeedbackLayer>,
    data: &Arc<Matrix>,
    events: &Sender<TrainEvent>,
) -> Option<Arc<Scoring>> {
    match refit_and_tell(&mut trained.ensemble, data, keep, events) {
        Ok(scores) => {
            trained.scores = scores;
            // A feedback layer learns its marks again on top of the refitted scores.
            let shown = match layer {
                Some(layer) => {
                    layer.set_base(&trained.scores);
                    layer.scores()
                }
                None => trained.scores.clone(),
            };
            Some(send_scores(trained, shown, data, events))
        }
        Err(e) => {
            let _ = events.send(TrainEvent::Warning(format!("cannot refit: {e}")));
            None
        }
    }
}

/// Refits `ensemble` over the rows `keep` allows ([`Ensemble::refit`]) and tells which
/// members newly score by L_D alone: a refit can switch one, its fit choosing over the rows
/// the marks left.
fn refit_and_tell(
    ensemble: &mut Ensemble,
    data: &Matrix,
    keep: Option<&[bool]>,
    events: &Sender<TrainEvent>,
) -> Result<Vec<f64>, String> {
    let before = ensemble.by_discriminator();
    let scores = ensemble.refit(data, keep)?;
    for (i, member) in ensemble.members.iter().enumerate() {
        if !before.contains(&(i + 1)) {
            tell_score_chosen(&member.detector, i + 1, events);
        }
    }
    Ok(scores)
}

/// Tells which score member `number` (1-based) uses, when its fit chose one its
/// configuration does not name ([`Detector::score_note`]).
fn tell_score_chosen(detector: &Detector, number: usize, events: &Sender<TrainEvent>) {
    if let Some(note) = detector.score_note() {
        let _ = events.send(TrainEvent::ScoreChosen {
            detector: detector.kind(),
            member: number,
            note,
        });
    }
}

/// Each trained ensemble with its training settings, as checkpoints record them.
pub(crate) fn parts(trained: &[Trained]) -> Vec<(&Ensemble, &TrainConfig)> {
    trained.iter().map(|t| (&t.ensemble, &t.train)).collect()
}

/// Writes each ensemble to `dir` (side by side: each to its detector's subdirectory);
/// the event says whether it worked.
pub(crate) fn save_checkpoint(
    dir: &Path,
    models: &[(&Ensemble, &TrainConfig)],
    side_by_side: bool,
    context: &DataContext,
) -> TrainEvent {
    let saved = models.iter().try_for_each(|(ensemble, train)| {
        let target = match ensemble.kind() {
            Some(kind) if side_by_side => checkpoint::side_by_side_dir(dir, kind),
            _ => dir.to_path_buf(),
        };
        let meta = CheckpointMeta::new(ensemble, train, &context.read, &context.encoder);
        checkpoint::save(&target, ensemble, &meta)
    });
    match saved {
        Ok(()) => TrainEvent::CheckpointSaved(dir.to_path_buf()),
        Err(e) => TrainEvent::CheckpointFailed(format!("checkpoint not saved: {e:#}")),
    }
}

/// Serves checkpoint and rescore requests with the networks of the moment, and keeps the
/// finished members with the sum of their calibrated scores over the data (so a rescore
/// only scores the member in training).
struct Scorer<'a> {
    data: &'a Arc<Matrix>,
    context: &'a DataContext,
    events: &'a Sender<TrainEvent>,
    train: &'a TrainConfig,
    finished: Ensemble,
    finished_sum: Vec<f64>,
    /// Rows the fits use (`None`: all); rows marked anomalous are `false`.
    keep: Option<Vec<bool>>,
    /// Every row marked, as training takes them.
    marks: Marked,
    /// The marks changed since the trainer last took them.
    keep_changed: bool,
    /// Detectors trained earlier in a side-by-side session: saved with this one, and
    /// refitted at a rescore after the marks changed.
    earlier: &'a mut [Trained],
    /// `keep` changed since `earlier` was last refitted.
    earlier_stale: bool,
    side_by_side: bool,
}

impl Scorer<'_> {
    /// Takes `marked` as the marks from now on: training learns them from the next step,
    /// and rows marked anomalous leave every fit (the finished members are refitted).
    fn mark(&mut self, marked: &Marked) {
        if *marked == self.marks {
            return;
        }
        self.marks = marked.clone();
        self.keep_changed = true;
        let keep = marked.keep(self.data.rows);
        if keep == self.keep {
            return;
        }
        self.keep = keep;
        self.earlier_stale = true;
        if self.finished.members.is_empty() {
            return;
        }
        match refit_and_tell(
            &mut self.finished,
            self.data,
            self.keep.as_deref(),
            self.events,
        ) {
            Ok(scores) => {
                let n = self.finished.members.len() as f64;
                self.finished_sum = scores.into_iter().map(|s| s * n).collect();
            }
            Err(e) => {
                let _ = self
                    .events
                    .send(TrainEvent::Warning(format!("cannot refit: {e}")));
            }
        }
    }

    /// Adds the trainer's networks, fitted over the kept rows, to the finished members.
    /// Returns every row's detail under that member, for the inspect view.
    fn finish(&mut self, trainer: &Trainer) -> Result<RowDetail> {
        let (member, calibrated, detail) = member_of(trainer, self.data, self.keep.as_deref())?;
        tell_score_chosen(
            &member.detector,
            self.finished.members.len() + 1,
            self.events,
        );
        self.finished_sum
            .iter_mut()
            .zip(&calibrated)
            .for_each(|(s, c)| *s += c);
        self.finished.members.push(member);
        Ok(detail)
    }

    /// Ensemble scores of the finished members, with the calibrated scores of the member in
    /// training when given.
    fn mean_with(&self, current: Option<&[f64]>) -> Vec<f64> {
        let n = (self.finished.members.len() + usize::from(current.is_some())).max(1) as f64;
        match current {
            None => self.finished_sum.iter().map(|s| s / n).collect(),
            Some(c) => self
                .finished_sum
                .iter()
                .zip(c)
                .map(|(s, c)| (s + c) / n)
                .collect(),
        }
    }

    fn serve(&mut self, inbox: &mut Inbox, trainer: &Trainer) {
        self.serve_view(inbox, &trainer.view());
    }

    fn serve_view(&mut self, inbox: &mut Inbox, view: &StepView<'_>) {
        if let Some(marked) = inbox.marks.take() {
            self.mark(&marked);
        }
        if inbox.saves.is_empty() && !inbox.rescore {
            return;
        }
        let current = view.member_of(self.data, self.keep.as_deref());
        let (member, calibrated, detail) = match current {
            Ok(pair) => pair,
            Err(e) => {
                let _ = self.events.send(TrainEvent::Warning(format!(
                    "cannot score the rows now: {e:#}"
                )));
                inbox.saves.clear();
                inbox.rescore = false;
                return;
            }
        };
        let rescore = std::mem::take(&mut inbox.rescore);
        if rescore && std::mem::take(&mut self.earlier_stale) {
            for trained in self.earlier.iter_mut() {
                rescore_trained(trained, self.keep.as_deref(), None, self.data, self.events);
            }
        }
        let scores = rescore.then(|| self.mean_with(Some(&calibrated)));
        let saves = std::mem::take(&mut inbox.saves);
        if !saves.is_empty() {
            // The ensemble as it stands: the finished members and the one in training.
            let mut ensemble = self.finished.clone();
            ensemble.members.push(member.clone());
            for dir in saves {
                self.save(&dir, &ensemble);
            }
        }
        if let Some(scores) = scores {
            self.send_scoring(scores, detail, view, Some(&member.detector));
        }
    }

    /// Saves `ensemble` (this detector's, as it stands) with the earlier detectors'.
    fn save(&self, dir: &Path, ensemble: &Ensemble) {
        let mut models = parts(self.earlier);
        models.push((ensemble, self.train));
        let _ = self.events.send(save_checkpoint(
            dir,
            &models,
            self.side_by_side,
            self.context,
        ));
    }

    /// Sends the ensemble `scores` of every row. The inspect view's detail and
    /// explanations are those of `current`, the member in training, or else of the last
    /// finished member.
    fn send_scoring(
        &self,
        scores: Vec<f64>,
        detail: RowDetail,
        view: &StepView<'_>,
        current: Option<&Detector>,
    ) {
        let finished = self.finished.members.len();
        let Some(shown) = current.or(self.finished.members.last().map(|m| &m.detector)) else {
            return;
        };
        let mut scoring = Scoring::new(
            view.epochs_done,
            scores,
            detail,
            shown,
            self.data.clone(),
            finished + usize::from(current.is_some()),
        );
        scoring.by_discriminator = self.finished.by_discriminator();
        if current.is_some_and(Detector::scores_by_discriminator) {
            scoring.by_discriminator.push(finished + 1);
        }
        let _ = self.events.send(TrainEvent::Scored(Arc::new(scoring)));
    }
}

/// Controls received and not yet acted on.
#[derive(Default)]
struct Inbox {
    stop: bool,
    paused: bool,
    rescore: bool,
    /// Checkpoint directories requested, served at the next step boundary.
    saves: Vec<PathBuf>,
    /// The latest marks, not yet applied.
    marks: Option<Marked>,
    /// The marks the last detector trained with, for the next detector to start from.
    carried: Marked,
}

impl Inbox {
    /// Reads every waiting control and lets `serve` act on saves and rescores; while
    /// paused, keeps waiting (and serving) until resume or stop.
    fn settle(
        &mut self,
        controls: &Receiver<Control>,
        events: &Sender<TrainEvent>,
        mut serve: impl FnMut(&mut Inbox),
    ) {
        loop {
            while let Ok(control) = controls.try_recv() {
                self.take(control, events);
            }
            serve(self);
            if self.stop || !self.paused {
                return;
            }
            match controls.recv_timeout(Duration::from_millis(250)) {
                Ok(control) => self.take(control, events),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.stop = true,
            }
        }
    }

    fn take(&mut self, control: Control, events: &Sender<TrainEvent>) {
        match control {
            Control::Stop => self.stop = true,
            Control::SaveCheckpoint(dir) => self.saves.push(dir),
            Control::Rescore => self.rescore = true,
            Control::Marks(marked) => self.marks = Some(marked),
            Control::Pause if !self.paused => {
                self.paused = true;
                let _ = events.send(TrainEvent::Paused);
            }
            Control::Resume if self.paused => {
                self.paused = false;
                let _ = events.send(TrainEvent::Resumed);
            }
            Control::Pause | Control::Resume => {}
        }
    }
}

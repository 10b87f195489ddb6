//! Training on its own thread: the UI (or the CLI) sends [`Control`]s and receives
//! [`TrainEvent`]s, and never waits on a training step.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::checkpoint::{self, CheckpointMeta};
use super::events::{Control, TrainEvent};
use super::scoring::Scoring;
use super::trainer::{fit_mixture, MixtureFit, StepView, TrainConfig, Trainer};
use crate::data::{Encoder, Matrix, ReadOptions};
use crate::model::dense::Dev;
use crate::model::{Dagmm, DagmmConfig, GmmParams};

/// Minimum time between two `Step` events.
const STEP_EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// What a finished training run hands back.
pub struct Trained {
    pub model: Dagmm,
    pub dev: Dev,
    /// Mixture fitted over all training rows with the final networks.
    pub gmm: GmmParams,
    /// Energy of every training row under that mixture (file order).
    pub energies: Vec<f64>,
    pub train: TrainConfig,
    pub epochs_done: usize,
}

impl Trained {
    /// The checkpoint metadata for this model with the data transformation that fed it.
    pub fn meta(&self, read: &ReadOptions, encoder: &Encoder) -> CheckpointMeta {
        checkpoint_meta(
            &self.model,
            &self.train,
            self.epochs_done,
            self.gmm.clone(),
            read,
            encoder,
        )
    }
}

fn checkpoint_meta(
    model: &Dagmm,
    train: &TrainConfig,
    epochs_done: usize,
    gmm: GmmParams,
    read: &ReadOptions,
    encoder: &Encoder,
) -> CheckpointMeta {
    CheckpointMeta {
        format: checkpoint::FORMAT.to_string(),
        read: read.clone(),
        encoder: encoder.clone(),
        model: model.config.clone(),
        train: train.clone(),
        gmm,
        epochs_done,
    }
}

/// How to describe the data in checkpoints the worker writes on request.
#[derive(Clone)]
pub struct DataContext {
    pub read: ReadOptions,
    pub encoder: Encoder,
}

/// What the worker does besides training.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerOptions {
    /// Score every row and send [`TrainEvent::Scored`] every this many epochs and at the
    /// end; `Some(0)` picks about ten rescores per run; `None` never (headless training
    /// scores once itself).
    pub rescore_every: Option<usize>,
    /// Wait for [`Control::Resume`] before the first step.
    pub start_paused: bool,
}

/// The caller's side of a running worker.
pub struct WorkerHandle {
    pub events: Receiver<TrainEvent>,
    pub controls: Sender<Control>,
    pub thread: JoinHandle<Result<Trained>>,
}

/// Starts training `data` on a new thread (headless: no scoring events).
pub fn spawn(
    model: DagmmConfig,
    train: TrainConfig,
    data: Arc<Matrix>,
    context: DataContext,
) -> WorkerHandle {
    spawn_thread(move |events, controls| {
        train_loop(
            model,
            train,
            data,
            &context,
            WorkerOptions::default(),
            events,
            controls,
        )
    })
}

/// Runs `body` on the training thread with a fresh channel pair; an error is also sent
/// as [`TrainEvent::Failed`].
pub(crate) fn spawn_thread(
    body: impl FnOnce(&Sender<TrainEvent>, &Receiver<Control>) -> Result<Trained> + Send + 'static,
) -> WorkerHandle {
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

/// The training loop of a worker: epochs with events, controls served between steps.
pub(crate) fn train_loop(
    model: DagmmConfig,
    train: TrainConfig,
    data: Arc<Matrix>,
    context: &DataContext,
    options: WorkerOptions,
    events: &Sender<TrainEvent>,
    controls: &Receiver<Control>,
) -> Result<Trained> {
    let mut trainer = Trainer::new(model, train, data.rows);
    let epochs = trainer.config.epochs;
    let rescore_every = options.rescore_every.map(|n| {
        if n == 0 {
            epochs.div_ceil(10).max(1)
        } else {
            n
        }
    });
    let _ = events.send(TrainEvent::Started {
        rows: data.rows,
        features: data.cols,
        epochs,
        steps_per_epoch: trainer.steps_per_epoch(),
        rescore_every,
    });
    let started = Instant::now();
    let mut inbox = Inbox::default();
    let scorer = Scorer {
        data: &data,
        context,
        events,
    };
    if options.start_paused {
        inbox.take(Control::Pause, events);
        inbox.settle(controls, events, |inbox| {
            scorer.serve(inbox, &trainer.view())
        });
    }
    for epoch in 1..=epochs {
        if inbox.stop {
            break;
        }
        let mut last_event = Instant::now();
        let summary = trainer.epoch(&data, |view| {
            if last_event.elapsed() >= STEP_EVENT_INTERVAL {
                last_event = Instant::now();
                let _ = events.send(TrainEvent::Step {
                    epoch,
                    step: view.step,
                    loss: view.loss,
                });
            }
            inbox.settle(controls, events, |inbox| scorer.serve(inbox, view));
            !inbox.stop
        })?;
        if summary.dropped_steps > 0 {
            let _ = events.send(TrainEvent::Warning(format!(
                "epoch {epoch}: {} step(s) had a non-finite loss or update and were dropped",
                summary.dropped_steps
            )));
        }
        if summary.max_jitter > 0.0 {
            let _ = events.send(TrainEvent::Warning(format!(
                "epoch {epoch}: a covariance needed diagonal jitter {:.1e} to factorise",
                summary.max_jitter
            )));
        }
        let _ = events.send(TrainEvent::Epoch {
            epoch,
            loss: summary.loss,
            phi: summary.phi,
            samples_per_sec: summary.samples as f64 / summary.seconds.max(1e-9),
            elapsed_secs: started.elapsed().as_secs_f64(),
        });
        let due = rescore_every.is_some_and(|n| epoch % n == 0 && epoch < epochs);
        inbox.rescore |= due;
        inbox.settle(controls, events, |inbox| {
            inbox.rescore &= !inbox.stop;
            scorer.serve(inbox, &trainer.view())
        });
    }
    let fit = fit_mixture(&trainer.model, &trainer.dev, &data)?;
    let _ = events.send(TrainEvent::Finished {
        epochs_done: trainer.epochs_done,
        stopped_early: inbox.stop,
    });
    let gmm = fit.gmm.clone();
    let energies = fit.energies.clone();
    if rescore_every.is_some() {
        scorer.send_scoring(fit, &trainer.view());
    }
    // Saves asked for while the last epoch ran (e.g. on quit) are written now.
    scorer.serve(&mut inbox, &trainer.view());
    Ok(Trained {
        gmm,
        energies,
        train: trainer.config.clone(),
        epochs_done: trainer.epochs_done,
        dev: trainer.dev,
        model: trainer.model,
    })
}

/// Serves checkpoint and rescore requests with the networks of the moment.
struct Scorer<'a> {
    data: &'a Arc<Matrix>,
    context: &'a DataContext,
    events: &'a Sender<TrainEvent>,
}

impl Scorer<'_> {
    fn serve(&self, inbox: &mut Inbox, view: &StepView<'_>) {
        if inbox.saves.is_empty() && !inbox.rescore {
            return;
        }
        let fit = match fit_mixture(view.model, view.dev, self.data) {
            Ok(fit) => fit,
            Err(e) => {
                let _ = self.events.send(TrainEvent::Warning(format!(
                    "cannot score the rows now: {e:#}"
                )));
                inbox.saves.clear();
                inbox.rescore = false;
                return;
            }
        };
        for dir in std::mem::take(&mut inbox.saves) {
            self.save(&dir, &fit, view);
        }
        if std::mem::take(&mut inbox.rescore) {
            self.send_scoring(fit, view);
        }
    }

    fn save(&self, dir: &Path, fit: &MixtureFit, view: &StepView<'_>) {
        let meta = checkpoint_meta(
            view.model,
            view.config,
            view.epochs_done,
            fit.gmm.clone(),
            &self.context.read,
            &self.context.encoder,
        );
        let event = match checkpoint::save(dir, view.model, &meta) {
            Ok(()) => TrainEvent::CheckpointSaved(dir.to_path_buf()),
            Err(e) => TrainEvent::Warning(format!("checkpoint not saved: {e:#}")),
        };
        let _ = self.events.send(event);
    }

    fn send_scoring(&self, fit: MixtureFit, view: &StepView<'_>) {
        let scoring = Scoring::new(
            view.epochs_done,
            fit,
            view.model,
            view.dev,
            self.data.clone(),
        );
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

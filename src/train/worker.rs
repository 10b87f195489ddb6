//! Training on its own thread: the UI (or the CLI) sends [`Control`]s and receives
//! [`TrainEvent`]s, and never waits on a training step.

use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::checkpoint::{self, CheckpointMeta};
use super::events::{Control, TrainEvent};
use super::trainer::{fit_mixture, TrainConfig, Trainer};
use crate::data::{Encoder, Matrix, ReadOptions};
use crate::model::{Dagmm, DagmmConfig, GmmParams};

/// Minimum time between two `Step` events.
const STEP_EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// What a finished training run hands back.
pub struct Trained {
    pub model: Dagmm,
    pub dev: crate::model::dense::Dev,
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
        CheckpointMeta {
            format: checkpoint::FORMAT.to_string(),
            read: read.clone(),
            encoder: encoder.clone(),
            model: self.model.config.clone(),
            train: self.train.clone(),
            gmm: self.gmm.clone(),
            epochs_done: self.epochs_done,
        }
    }
}

/// How to describe the data in checkpoints the worker writes on request.
#[derive(Clone)]
pub struct DataContext {
    pub read: ReadOptions,
    pub encoder: Encoder,
}

/// The caller's side of a running worker.
pub struct WorkerHandle {
    pub events: Receiver<TrainEvent>,
    pub controls: Sender<Control>,
    pub thread: JoinHandle<Result<Trained>>,
}

/// Starts training `data` on a new thread.
pub fn spawn(
    model: DagmmConfig,
    train: TrainConfig,
    data: Arc<Matrix>,
    context: DataContext,
) -> WorkerHandle {
    let (event_tx, events) = channel();
    let (controls, control_rx) = channel();
    let thread = std::thread::Builder::new()
        .name("dagmm-train".into())
        .spawn(move || {
            let result = run(model, train, &data, &context, &event_tx, &control_rx);
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

fn run(
    model: DagmmConfig,
    train: TrainConfig,
    data: &Matrix,
    context: &DataContext,
    events: &Sender<TrainEvent>,
    controls: &Receiver<Control>,
) -> Result<Trained> {
    let mut trainer = Trainer::new(model, train, data.rows);
    let epochs = trainer.config.epochs;
    let _ = events.send(TrainEvent::Started {
        rows: data.rows,
        features: data.cols,
        epochs,
        steps_per_epoch: trainer.steps_per_epoch(),
    });
    let started = Instant::now();
    let mut inbox = Inbox::default();
    for epoch in 1..=epochs {
        let mut last_event = Instant::now();
        let summary = trainer.epoch(data, |step, loss| {
            if last_event.elapsed() >= STEP_EVENT_INTERVAL {
                last_event = Instant::now();
                let _ = events.send(TrainEvent::Step {
                    epoch,
                    step,
                    loss: *loss,
                });
            }
            inbox.drain(controls, events);
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
        inbox.drain(controls, events);
        for dir in std::mem::take(&mut inbox.saves) {
            save_now(&trainer, data, context, &dir, events);
        }
        if inbox.stop {
            break;
        }
    }
    let fit = fit_mixture(&trainer.model, &trainer.dev, data)?;
    let _ = events.send(TrainEvent::Finished {
        epochs_done: trainer.epochs_done,
        stopped_early: inbox.stop,
    });
    Ok(Trained {
        gmm: fit.gmm,
        energies: fit.energies,
        train: trainer.config.clone(),
        epochs_done: trainer.epochs_done,
        dev: trainer.dev,
        model: trainer.model,
    })
}

/// Controls received and not yet acted on.
#[derive(Default)]
struct Inbox {
    stop: bool,
    /// Checkpoint directories requested; served between epochs, when the mixture is refitted.
    saves: Vec<std::path::PathBuf>,
}

impl Inbox {
    /// Reads every waiting control; a pause blocks here until resume or stop.
    fn drain(&mut self, controls: &Receiver<Control>, events: &Sender<TrainEvent>) {
        loop {
            match controls.try_recv() {
                Ok(control) => self.take(control, controls, events),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }

    fn take(
        &mut self,
        control: Control,
        controls: &Receiver<Control>,
        events: &Sender<TrainEvent>,
    ) {
        match control {
            Control::Stop => self.stop = true,
            Control::SaveCheckpoint(dir) => self.saves.push(dir),
            Control::Resume => {}
            Control::Pause => {
                let _ = events.send(TrainEvent::Paused);
                loop {
                    match controls.recv_timeout(Duration::from_millis(250)) {
                        Ok(Control::Resume) => {
                            let _ = events.send(TrainEvent::Resumed);
                            return;
                        }
                        Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => {
                            self.stop = true;
                            return;
                        }
                        Ok(Control::SaveCheckpoint(dir)) => self.saves.push(dir),
                        Ok(Control::Pause) | Err(RecvTimeoutError::Timeout) => {}
                    }
                }
            }
        }
    }
}

fn save_now(
    trainer: &Trainer,
    data: &Matrix,
    context: &DataContext,
    dir: &Path,
    events: &Sender<TrainEvent>,
) {
    let saved = fit_mixture(&trainer.model, &trainer.dev, data).and_then(|fit| {
        let trained = Trained {
            gmm: fit.gmm,
            energies: fit.energies,
            model: trainer.model.clone(),
            dev: trainer.dev.clone(),
            train: trainer.config.clone(),
            epochs_done: trainer.epochs_done,
        };
        checkpoint::save(
            dir,
            &trained.model,
            &trained.meta(&context.read, &context.encoder),
        )
    });
    let event = match saved {
        Ok(()) => TrainEvent::CheckpointSaved(dir.to_path_buf()),
        Err(e) => TrainEvent::Warning(format!("checkpoint not saved: {e:#}")),
    };
    let _ = events.send(event);
}

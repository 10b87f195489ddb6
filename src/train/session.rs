//! The workbench's session on the worker thread: read the file (reporting progress), encode
//! it, then train a new model — or score with a saved one — sending plain events only.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::checkpoint;
use super::events::{Control, LoadedData, TrainEvent};
use super::scoring::Scoring;
use super::trainer::TrainConfig;
use super::worker::{
    serve_trained, spawn_thread, train_loop, DataContext, Trained, WorkerHandle, WorkerOptions,
};
use crate::data::{read_table_reporting, Encoder, LoadProgress, ReadOptions, ScaleKind};
use crate::model::{DetectorConfig, DetectorKind};

/// Minimum time between two `Loading` events.
const LOADING_EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// Picks the architecture and training settings once the encoded width and row count are
/// known (they depend on the file).
pub type ChooseModel =
    Box<dyn FnOnce(usize, usize) -> Result<(DetectorConfig, TrainConfig)> + Send>;

/// Where the session's model comes from.
pub enum ModelSource {
    /// Train a new model on every row of the file.
    Train(ChooseModel),
    /// Score with a checkpoint written by `train` or the workbench; no training. A
    /// checkpoint of another detector than `expected` is refused by name.
    Checkpoint {
        dir: PathBuf,
        expected: Option<DetectorKind>,
    },
}

/// Everything a workbench session needs to start.
pub struct SessionPlan {
    pub data: PathBuf,
    pub read: ReadOptions,
    pub scale: ScaleKind,
    pub model: ModelSource,
    pub options: WorkerOptions,
}

/// Starts a session on the worker thread; the caller only ever sees events.
pub fn spawn_session(plan: SessionPlan) -> WorkerHandle {
    spawn_thread(move |events, controls| run(plan, events, controls))
}

fn run(
    plan: SessionPlan,
    events: &Sender<TrainEvent>,
    controls: &Receiver<Control>,
) -> Result<Trained> {
    let checkpoint = match &plan.model {
        ModelSource::Checkpoint { dir, expected } => {
            Some(checkpoint::load_expecting(dir, *expected)?)
        }
        ModelSource::Train(_) => None,
    };
    let read = checkpoint
        .as_ref()
        .map_or_else(|| plan.read.clone(), |c| c.meta.read.clone());
    let schema = checkpoint.as_ref().map(|c| &c.meta.encoder.schema);
    let mut last = Instant::now() - LOADING_EVENT_INTERVAL;
    let table = read_table_reporting(&plan.data, &read, schema, &mut |progress: LoadProgress| {
        if last.elapsed() >= LOADING_EVENT_INTERVAL {
            last = Instant::now();
            let _ = events.send(TrainEvent::Loading(progress));
        }
    })?;
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, mut notes) = match &checkpoint {
        Some(c) => (c.meta.encoder.clone(), Vec::new()),
        None => Encoder::fit(&table, &all, plan.scale)?,
    };
    notes.splice(0..0, table.notes.iter().cloned());
    let encoded = encoder.transform(&table, &all);
    if encoded.unseen_levels > 0 {
        notes.push(format!(
            "{} categorical cells had a level the model never saw (encoded as all zeros)",
            encoded.unseen_levels
        ));
    }
    let data = Arc::new(encoded.matrix);
    let context = DataContext { read, encoder };
    match (plan.model, checkpoint) {
        (ModelSource::Checkpoint { dir, .. }, Some(ck)) => {
            send_loaded(
                events,
                table,
                &context,
                notes,
                (
                    ck.ensemble.describe(),
                    ck.ensemble.kind().unwrap_or_default(),
                ),
                Some(dir.clone()),
            );
            let scores = ck.ensemble.scores(&data);
            let _ = events.send(TrainEvent::Finished {
                epochs_done: ck.ensemble.epochs_done(),
                stopped_early: false,
            });
            let scoring = Scoring::of_ensemble(&ck.ensemble, scores.clone(), data.clone())?;
            let _ = events.send(TrainEvent::Scored(Arc::new(scoring)));
            let trained = Trained {
                ensemble: ck.ensemble,
                scores,
                train: ck.meta.train,
            };
            serve_trained(trained, &data, &context, events, controls)
        }
        (ModelSource::Train(choose), _) => {
            let (model, train) = choose(data.cols, data.rows)?;
            model.validate().map_err(anyhow::Error::msg)?;
            send_loaded(
                events,
                table,
                &context,
                notes,
                (model.describe(), model.kind()),
                None,
            );
            train_loop(model, train, data, &context, plan.options, events, controls)
        }
        (ModelSource::Checkpoint { dir, .. }, None) => {
            anyhow::bail!("checkpoint {} was not loaded", dir.display())
        }
    }
}

fn send_loaded(
    events: &Sender<TrainEvent>,
    table: crate::data::RawTable,
    context: &DataContext,
    notes: Vec<String>,
    (model, detector): (String, DetectorKind),
    checkpoint: Option<PathBuf>,
) {
    let loaded = LoadedData {
        table,
        feature_names: context.encoder.feature_names(),
        notes,
        model,
        detector,
        checkpoint,
    };
    let _ = events.send(TrainEvent::Loaded(Arc::new(loaded)));
}

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
use super::worker::{
    serve_trained, spawn_thread, train_loop, DataContext, DetectorPlan, Trained, WorkerHandle,
    WorkerOptions,
};
use crate::data::{read_table_reporting, Encoder, LoadProgress, ReadOptions, ScaleKind};
use crate::model::DetectorKind;

/// Minimum time between two `Loading` events.
const LOADING_EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// Picks each detector's architecture and training settings once the encoded width and
/// row count are known (they depend on the file); several detectors train side by side.
pub type ChooseModel = Box<dyn FnOnce(usize, usize) -> Result<Vec<DetectorPlan>> + Send>;

/// Where the session's model comes from.
pub enum ModelSource {
    /// Train a new model on every row of the file.
    Train(ChooseModel),
    /// Score with a checkpoint written by `train` or the workbench (a side-by-side
    /// session's holds one per detector); no training. A checkpoint without every
    /// `expected` detector (empty: any) is refused by name.
    Checkpoint {
        dir: PathBuf,
        expected: Vec<DetectorKind>,
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
pub fn spawn_session(plan: SessionPlan) -> WorkerHandle<Vec<Trained>> {
    spawn_thread(move |events, controls| run(plan, events, controls))
}

fn run(
    plan: SessionPlan,
    events: &Sender<TrainEvent>,
    controls: &Receiver<Control>,
) -> Result<Vec<Trained>> {
    let checkpoints = match &plan.model {
        ModelSource::Checkpoint { dir, expected } => checkpoint::load_all(dir, expected)?,
        ModelSource::Train(_) => Vec::new(),
    };
    // Side-by-side checkpoints come from one session: the first one's data settings hold.
    let checkpoint = checkpoints.first();
    let read = checkpoint.map_or_else(|| plan.read.clone(), |c| c.meta.read.clone());
    let schema = checkpoint.map(|c| &c.meta.encoder.schema);
    let mut last = Instant::now() - LOADING_EVENT_INTERVAL;
    let table = read_table_reporting(&plan.data, &read, schema, &mut |progress: LoadProgress| {
        if last.elapsed() >= LOADING_EVENT_INTERVAL {
            last = Instant::now();
            let _ = events.send(TrainEvent::Loading(progress));
        }
    })?;
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, mut notes) = match checkpoint {
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
    match plan.model {
        ModelSource::Checkpoint { dir, .. } => {
            let describe = checkpoints.iter().map(|c| c.ensemble.describe());
            let detectors = checkpoints.iter().filter_map(|c| c.ensemble.kind());
            send_loaded(
                events,
                table,
                &context,
                notes,
                (describe.collect(), detectors.collect()),
                Some(dir.clone()),
            );
            let mut trained = Vec::new();
            for ck in checkpoints {
                let scores = ck.ensemble.scores(&data);
                let scoring = Scoring::of_ensemble(&ck.ensemble, scores.clone(), data.clone());
                let _ = events.send(TrainEvent::Scored(Arc::new(scoring)));
                trained.push(Trained {
                    ensemble: ck.ensemble,
                    scores,
                    train: ck.meta.train,
                });
            }
            let _ = events.send(TrainEvent::Finished {
                epochs_done: trained.last().map_or(0, |t| t.ensemble.epochs_done()),
                stopped_early: false,
            });
            let side_by_side = trained.len() > 1;
            serve_trained(trained, side_by_side, &data, &context, events, controls)
        }
        ModelSource::Train(choose) => {
            let plans = choose(data.cols, data.rows)?;
            for (model, _) in &plans {
                model.validate().map_err(anyhow::Error::msg)?;
            }
            let describe = plans.iter().map(|(m, _)| m.describe());
            let detectors = plans.iter().map(|(m, _)| m.kind());
            send_loaded(
                events,
                table,
                &context,
                notes,
                (describe.collect(), detectors.collect()),
                None,
            );
            train_loop(plans, data, &context, plan.options, events, controls)
        }
    }
}

fn send_loaded(
    events: &Sender<TrainEvent>,
    table: crate::data::RawTable,
    context: &DataContext,
    notes: Vec<String>,
    (models, detectors): (Vec<String>, Vec<DetectorKind>),
    checkpoint: Option<PathBuf>,
) {
    let loaded = LoadedData {
        table,
        feature_names: context.encoder.feature_names(),
        notes,
        model: models.join(" + "),
        detectors,
        checkpoint,
    };
    let _ = events.send(TrainEvent::Loaded(Arc::new(loaded)));
}

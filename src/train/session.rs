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
use super::whole_file::rank_whole_file;
pub use super::whole_file::TOP_ROWS;
use super::worker::{
    parts, save_checkpoint, send_scores, serve_trained, spawn_thread, train_loop, DataContext,
    DetectorPlan, ServedTable, Trained, WorkerHandle, WorkerOptions,
};
use crate::data::{read_table_reporting, Encoder, LoadProgress, Matrix, ReadOptions, ScaleKind};
use crate::model::{DetectorKind, Ensemble};

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
    /// On a sampled file: the top rows of the file per detector that join the table once
    /// every row is ranked ([`TOP_ROWS`] in the workbench).
    pub keep_top: usize,
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
            let loaded = send_loaded(
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
                    file: None,
                });
            }
            let _ = events.send(TrainEvent::Finished {
                epochs_done: trained.last().map_or(0, |t| t.ensemble.epochs_done()),
                stopped_early: false,
            });
            serve(
                trained,
                &loaded,
                data,
                &context,
                (events, controls),
                plan.keep_top,
            )
        }
        ModelSource::Train(choose) => {
            let plans = choose(data.cols, data.rows)?;
            for (model, _) in &plans {
                model.validate().map_err(anyhow::Error::msg)?;
            }
            let describe = plans.iter().map(|(m, _)| m.describe());
            let detectors = plans.iter().map(|(m, _)| m.kind());
            let loaded = send_loaded(
                events,
                table,
                &context,
                notes,
                (describe.collect(), detectors.collect()),
                None,
            );
            let end = train_loop(
                plans,
                data.clone(),
                &context,
                plan.options,
                events,
                controls,
            )?;
            if end.stopped || !plan.options.serves_after_training() {
                return Ok(end.trained);
            }
            serve(
                end.trained,
                &loaded,
                data,
                &context,
                (events, controls),
                plan.keep_top,
            )
        }
    }
}

/// Serves the trained models on the table until told to stop; on a sampled file, every
/// row of the file is ranked first and the table grows by the file's top rows.
fn serve(
    mut trained: Vec<Trained>,
    loaded: &LoadedData,
    data: Arc<Matrix>,
    context: &DataContext,
    (events, controls): (&Sender<TrainEvent>, &Receiver<Control>),
    keep_top: usize,
) -> Result<Vec<Trained>> {
    let side_by_side = trained.len() > 1;
    let mut table = ServedTable {
        data,
        id: loaded.table_id,
        pending: Vec::new(),
    };
    if loaded.table.sampled_from.is_some() {
        match rank_every_row(&mut trained, loaded, context, (events, controls), keep_top)? {
            Some(ranked) => table = ranked,
            None => return Ok(trained),
        }
    }
    serve_trained(trained, side_by_side, table, context, events, controls)
}

/// Scores every row of the sampled file `loaded` comes from, then sends the table of the
/// sample and the file's top rows (a new [`LoadedData`]) and its scorings, ranked among
/// every row. Controls that arrive meanwhile are kept for serving (`None`: told to stop).
fn rank_every_row(
    trained: &mut [Trained],
    loaded: &LoadedData,
    context: &DataContext,
    (events, controls): (&Sender<TrainEvent>, &Receiver<Control>),
    keep_top: usize,
) -> Result<Option<ServedTable>> {
    let models: &[Trained] = trained;
    let sample = &loaded.table;
    let rows = sample.sampled_from.unwrap_or(0);
    let ensembles: Vec<&Ensemble> = models.iter().map(|t| &t.ensemble).collect();
    let mut pending = Vec::new();
    let mut last = Instant::now();
    let _ = events.send(TrainEvent::Ranking { done: 0, rows });
    let ranked = rank_whole_file(
        &sample.path,
        &context.read,
        &context.encoder,
        &ensembles,
        sample,
        keep_top,
        |done| {
            while let Ok(control) = controls.try_recv() {
                match control {
                    Control::Stop => return false,
                    // A save (on quit, say) must not wait for the pass.
                    Control::SaveCheckpoint(dir) => {
                        let side_by_side = ensembles.len() > 1;
                        let saved = save_checkpoint(&dir, &parts(models), side_by_side, context);
                        let _ = events.send(saved);
                    }
                    other => pending.push(other),
                }
            }
            if last.elapsed() >= LOADING_EVENT_INTERVAL {
                last = Instant::now();
                let _ = events.send(TrainEvent::Ranking { done, rows });
            }
            true
        },
    )?;
    let Some(ranked) = ranked else {
        return Ok(None);
    };
    let all: Vec<usize> = (0..ranked.table.len()).collect();
    let data = Arc::new(context.encoder.transform(&ranked.table, &all).matrix);
    let mut notes = vec![format!(
        "ranked all {} rows of the file: the table holds the {}-row training sample and the \
         file's {} top-scoring rows outside it; ranks and percentiles count every row",
        ranked.streamed.records,
        sample.len(),
        ranked.top_rows
    )];
    if ranked.streamed.unseen_levels > 0 {
        notes.push(format!(
            "{} categorical cells outside the sample had a level the sample lacks (encoded as all zeros)",
            ranked.streamed.unseen_levels
        ));
    }
    let id = loaded.table_id + 1;
    let replaced = LoadedData {
        table: ranked.table,
        feature_names: loaded.feature_names.clone(),
        feature_columns: loaded.feature_columns.clone(),
        notes,
        model: loaded.model.clone(),
        detectors: loaded.detectors.clone(),
        checkpoint: loaded.checkpoint.clone(),
        table_id: id,
        top_rows: ranked.top_rows,
    };
    let _ = events.send(TrainEvent::Loaded(Arc::new(replaced)));
    for (t, file) in trained.iter_mut().zip(ranked.ranks) {
        t.scores = t.ensemble.scores(&data);
        t.file = Some(Arc::new(file));
        send_scores(t, t.scores.clone(), &data, events);
    }
    Ok(Some(ServedTable { data, id, pending }))
}

fn send_loaded(
    events: &Sender<TrainEvent>,
    table: crate::data::RawTable,
    context: &DataContext,
    notes: Vec<String>,
    (models, detectors): (Vec<String>, Vec<DetectorKind>),
    checkpoint: Option<PathBuf>,
) -> Arc<LoadedData> {
    let loaded = Arc::new(LoadedData {
        table,
        feature_names: context.encoder.feature_names(),
        feature_columns: context.encoder.feature_columns(),
        notes,
        model: models.join(" + "),
        detectors,
        checkpoint,
        table_id: 0,
        top_rows: 0,
    });
    let _ = events.send(TrainEvent::Loaded(loaded.clone()));
    loaded
}

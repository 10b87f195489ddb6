//! The plain data types that cross the worker/UI boundary: controls in, events out.
//! Nothing here depends on dfdx or on the terminal.

use std::path::PathBuf;
use std::sync::Arc;

use super::scoring::Scoring;
use crate::data::{LoadProgress, RawTable};
pub use crate::model::DetectorKind;

/// Commands the worker obeys between steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Pause,
    Resume,
    /// Finish after the current step (the mixture is still fitted and the model returned).
    Stop,
    /// Write a checkpoint of the current weights to this directory (served between steps).
    SaveCheckpoint(PathBuf),
    /// Score every row with the current weights now (served between steps; after
    /// training, refits every member's mixture and calibration over the kept rows first).
    Rescore,
    /// The rows an analyst marked (replaces the previous set). During training they teach
    /// from the next step (anomalies pushed up, normals held down, see
    /// [`crate::model::roles`]); rows marked anomalous leave every scoring fit from the next
    /// rescore on; after training, the feedback layer learns them at once and the networks
    /// are fine-tuned with them shortly after.
    Marks(Marked),
}

/// Rows (0-based, file order) marked anomalous and marked normal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Marked {
    pub anomalies: Vec<u32>,
    pub normals: Vec<u32>,
    /// The [`LoadedData::table_id`] of the table the rows index: marks made on a table the
    /// worker has since replaced are ignored (the UI sends them again for the new one).
    pub table: u32,
}

impl Marked {
    /// Only rows marked anomalous.
    pub fn anomalies(rows: Vec<u32>) -> Self {
        Marked {
            anomalies: rows,
            ..Marked::default()
        }
    }

    /// The marks of `(row, marked anomalous)` pairs (the inverse of [`Marked::pairs`]).
    pub fn from_pairs(pairs: &[(usize, bool)]) -> Self {
        let rows = |anomalous: bool| {
            pairs
                .iter()
                .filter(|p| p.1 == anomalous)
                .map(|p| p.0 as u32)
                .collect()
        };
        Marked {
            anomalies: rows(true),
            normals: rows(false),
            table: 0,
        }
    }

    /// Every marked row with whether it is marked anomalous, anomalies first.
    pub fn pairs(&self) -> Vec<(usize, bool)> {
        let anomalies = self.anomalies.iter().map(|&r| (r as usize, true));
        anomalies
            .chain(self.normals.iter().map(|&r| (r as usize, false)))
            .collect()
    }

    /// The rows of `rows` that fits keep: all but those marked anomalous (`None`: every row).
    pub fn keep(&self, rows: usize) -> Option<Vec<bool>> {
        if self.anomalies.is_empty() {
            return None;
        }
        let mut keep = vec![true; rows];
        for &r in &self.anomalies {
            if let Some(k) = keep.get_mut(r as usize) {
                *k = false;
            }
        }
        Some(keep)
    }

    /// How many rows are marked.
    pub fn len(&self) -> usize {
        self.anomalies.len() + self.normals.len()
    }

    /// `true` when no row is marked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The data as read and encoded, for the UI to show beside the scores.
#[derive(Debug)]
pub struct LoadedData {
    pub table: RawTable,
    /// Names of the encoded features (`column` or `column=level`), for reconstruction errors.
    pub feature_names: Vec<String>,
    /// Each data column the features come from, with its encoded features (a
    /// categorical column's one-hot levels are adjacent): what attributions add up to.
    pub feature_columns: Vec<(String, std::ops::Range<usize>)>,
    /// Things the user should know about the file (dropped rows, constant columns).
    pub notes: Vec<String>,
    /// One-line description of the model, e.g. `DAGMM 120-60-30-10-1 K=4` (side by side:
    /// each detector's, joined by ` + `).
    pub model: String,
    /// The detectors that score the rows: one, or several side by side, in training order.
    pub detectors: Vec<DetectorKind>,
    /// Where the model comes from: trained here, or the checkpoint directory.
    pub checkpoint: Option<PathBuf>,
    /// 0 for the table read first; each table that replaces it (the whole file ranked
    /// after training on a sample) counts up. Row indices are only meaningful within one.
    pub table_id: u32,
    /// Rows of the file's top that joined the training sample in this table (0: none,
    /// the table is the file or its sample).
    pub top_rows: usize,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// Reading the file (workbench sessions only).
    Loading(LoadProgress),
    /// The file is read and encoded (workbench sessions only); sent again, with a new
    /// table, once a sampled file's every row is ranked.
    Loaded(Arc<LoadedData>),
    /// After training on a sample: scoring every row of the file, `done` of `rows` so far.
    Ranking {
        done: u64,
        rows: u64,
    },
    Started {
        /// The detector trained: names its loss components and auxiliary series.
        detector: DetectorKind,
        rows: usize,
        features: usize,
        /// Epochs per ensemble member.
        epochs: usize,
        /// Ensemble members, trained one after another.
        members: usize,
        steps_per_epoch: usize,
        /// Epochs between two scorings of every row (`None`: no scoring events).
        rescore_every: Option<usize>,
    },
    /// Member `member` (1-based) of `members` starts training; epochs count from 1 again.
    MemberStarted {
        member: usize,
        members: usize,
    },
    /// Sent at most every ~100 ms during an epoch.
    Step {
        epoch: usize,
        step: usize,
        /// Mean loss components so far this epoch, named by the detector's kind.
        losses: Vec<f64>,
    },
    /// End of an epoch: mean loss components over its applied steps, the mean of the
    /// detector's auxiliary series (DAGMM: φ̂ per component), throughput.
    Epoch {
        epoch: usize,
        losses: Vec<f64>,
        aux: Vec<f64>,
        samples_per_sec: f64,
        elapsed_secs: f64,
    },
    /// Something went wrong but training continues (a dropped step, added jitter).
    Warning(String),
    /// The detector's training diverged in this epoch (EGBAD: D wins the game outright);
    /// training goes on, and the member keeps the state of `kept_epoch`, chosen by a
    /// label-free criterion on held-out rows.
    Diverged(Divergence),
    /// Member `member` (1-based) of `detector`'s ensemble scores otherwise than its
    /// configuration says (EGBAD: by L_D alone, chosen by its fit when it joined the
    /// ensemble or at a refit after marks); `note` says why.
    ScoreChosen {
        detector: DetectorKind,
        member: usize,
        note: String,
    },
    Paused,
    Resumed,
    CheckpointSaved(PathBuf),
    /// A checkpoint asked for could not be written (the message says why).
    CheckpointFailed(String),
    /// Training ended (all epochs, or stopped); the mixture over the training set is fitted.
    Finished {
        epochs_done: usize,
        stopped_early: bool,
    },
    /// Every row scored by the ensemble so far, the member in training included
    /// (workbench sessions only).
    Scored(Arc<Scoring>),
    /// After training, the marks were learnt: by the feedback layer at once, or by a
    /// fine-tune of the networks (`fine_tuned`). `new_in_top` rows that were not among the
    /// `top` highest unmarked rows now are.
    Learned {
        detector: DetectorKind,
        marks: usize,
        new_in_top: usize,
        top: usize,
        fine_tuned: bool,
    },
    /// Training could not continue.
    Failed(String),
}

/// A member's training diverged in one epoch; it keeps the state of `kept_epoch`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Divergence {
    /// 1-based member of the ensemble.
    pub member: usize,
    pub epoch: usize,
    /// What showed it (e.g. D's loss near zero).
    pub reason: String,
    pub kept_epoch: usize,
}

impl std::fmt::Display for Divergence {
    /// The one line the log, the footer and headless output report it with.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "member {}, epoch {}: training diverged ({}); keeping epoch {}, the best by held-out reconstruction, and scoring this member by the discriminator's term alone (its reconstruction was never learnt)",
            self.member, self.epoch, self.reason, self.kept_epoch
        )
    }
}

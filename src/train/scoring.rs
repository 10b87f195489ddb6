//! Every row scored by the current networks, as plain data: the ranked table, the inspect
//! view and the live metrics read a [`Scoring`] and never touch the model.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use crate::data::{Encoder, Matrix, RawTable, ReadOptions, Schema};
use crate::model::attribution::{path_attribution, typical_row};
use crate::model::{Attribution, Detector, DetectorKind, Ensemble, RowDetail, ATTRIBUTION_STEPS};

/// Answers "why is this row flagged?" on demand: computing x̂ for one row takes
/// microseconds, storing it for every row would double the memory of the data.
pub trait Explain: Send + Sync {
    /// The detector's error on each encoded feature of `row` (see
    /// [`DetectorKind::feature_error_title`]).
    fn feature_errors(&self, row: usize) -> Vec<f32>;

    /// Each column's contribution to `row`'s score relative to the typical row, the
    /// columns given as ranges of encoded features (see [`crate::model::attribution`]).
    /// `steps`: of the staircase path ([`ATTRIBUTION_STEPS`] for the inspect view). `None`
    /// when there are no networks to explain.
    fn attribution(
        &self,
        row: usize,
        columns: &[Range<usize>],
        steps: usize,
    ) -> Option<Attribution>;
}

/// Steps of the staircase behind an export's reasons (see [`Scoring::top_reasons`]).
const EXPORT_ATTRIBUTION_STEPS: usize = 4;

/// A detector frozen at scoring time, with the encoded data it scored.
struct FrozenDetector {
    /// The member whose reconstruction the inspect view shows; while it trains, also the
    /// score attributions explain.
    detector: Detector,
    /// The ensemble whose score (the table's) attributions explain, once there is one.
    ensemble: Option<Ensemble>,
    data: Arc<Matrix>,
    /// The typical row, computed at the first attribution (a pass over the rows).
    typical: OnceLock<Vec<f32>>,
    /// The last attribution asked for, by (row, steps): the inspect view redraws often.
    last: Mutex<Option<((usize, usize), Attribution)>>,
}

impl Explain for FrozenDetector {
    fn feature_errors(&self, row: usize) -> Vec<f32> {
        self.detector.feature_errors(self.data.row(row))
    }

    fn attribution(
        &self,
        row: usize,
        columns: &[Range<usize>],
        steps: usize,
    ) -> Option<Attribution> {
        let mut last = self.last.lock().ok()?;
        if let Some((seen, attribution)) = last.as_ref() {
            if *seen == (row, steps) {
                return Some(attribution.clone());
            }
        }
        let reference = self
            .typical
            .get_or_init(|| typical_row(&self.data, columns));
        let score = |m: &Matrix| match &self.ensemble {
            Some(e) => e.scores(m),
            None => self.detector.raw_scores(m),
        };
        let attribution = path_attribution(score, self.data.row(row), reference, columns, steps);
        *last = Some(((row, steps), attribution.clone()));
        Some(attribution)
    }
}

/// Explains nothing: an empty ensemble has no networks (and tests need no explanations).
pub struct NoExplanation;

impl Explain for NoExplanation {
    fn feature_errors(&self, _: usize) -> Vec<f32> {
        Vec::new()
    }

    fn attribution(&self, _: usize, _: &[Range<usize>], _: usize) -> Option<Attribution> {
        None
    }
}

/// Scores, ranks and per-row detail of every row at one point of training.
pub struct Scoring {
    /// The detector that scored.
    pub detector: DetectorKind,
    /// Epochs completed (by the member in training) when the rows were scored.
    pub epoch: usize,
    /// Ensemble score per row (file order): the mean over members of each member's raw
    /// score (DAGMM: its energy), centred on its median and divided by its interquartile
    /// range. High means anomalous.
    pub scores: Vec<f64>,
    /// Members in the ensemble that scored; the detail below is that of the last of them.
    pub members: usize,
    /// The members (1-based) among them that score by L_D alone (EGBAD), as fitted for
    /// these scores: the status line counts them, refits and checkpoints included.
    pub by_discriminator: Vec<usize>,
    /// Row indices, most anomalous first (ties keep file order).
    pub order: Vec<u32>,
    /// 0-based position of each row in `order`.
    pub position: Vec<u32>,
    /// Per-row quantities behind the score (DAGMM: γ̂ and z; EGBAD: the score's two parts).
    pub detail: RowDetail,
    /// When the rows are part of a larger file (the workbench on a sample): the scores of
    /// the file's other rows, so ranks and percentiles count every row of the file.
    pub file: Option<Arc<FileRanks>>,
    /// Attributions explain the ensemble's score (`false`: the raw score of the member in
    /// training, while one trains).
    pub explains_ensemble: bool,
    explainer: Arc<dyn Explain>,
}

/// The scores of a file's rows that are not in the table, from one pass over the file:
/// the ranks a table row gets among every row of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRanks {
    /// Rows in the file (the table's included).
    pub rows: u64,
    /// Scores of the rows not in the table, highest first.
    pub rest: Vec<f32>,
}

impl FileRanks {
    /// Rows outside the table scoring above `score`.
    fn above(&self, score: f64) -> usize {
        let score = score as f32;
        self.rest.partition_point(|&r| r > score)
    }
}

impl Scoring {
    /// Scoring from the ensemble `scores`, with the detail of one member's `detector`
    /// (`members` in all), which the inspect view explains.
    pub fn new(
        epoch: usize,
        scores: Vec<f64>,
        detail: RowDetail,
        detector: &Detector,
        data: Arc<Matrix>,
        members: usize,
    ) -> Self {
        Self::explained_by(epoch, scores, detail, detector, None, data, members)
    }

    fn explained_by(
        epoch: usize,
        scores: Vec<f64>,
        detail: RowDetail,
        detector: &Detector,
        ensemble: Option<Ensemble>,
        data: Arc<Matrix>,
        members: usize,
    ) -> Self {
        let explains_ensemble = ensemble.is_some();
        let explainer = Arc::new(FrozenDetector {
            detector: detector.clone(),
            ensemble,
            data,
            typical: OnceLock::new(),
            last: Mutex::new(None),
        });
        let mut scoring = Self::from_parts(detector.kind(), epoch, scores, detail, explainer);
        scoring.members = members;
        scoring.explains_ensemble = explains_ensemble;
        scoring
    }

    /// Scoring of a trained `ensemble` whose scores over `data` are `scores`; the detail
    /// comes from its last member.
    pub fn of_ensemble(ensemble: &Ensemble, scores: Vec<f64>, data: Arc<Matrix>) -> Self {
        let members = ensemble.members.len();
        let epoch = ensemble.epochs_done();
        match ensemble.members.last() {
            Some(shown) => {
                let detail = shown.detector.detail(&data);
                let mut scoring = Self::explained_by(
                    epoch,
                    scores,
                    detail,
                    &shown.detector,
                    Some(ensemble.clone()),
                    data,
                    members,
                );
                scoring.by_discriminator = ensemble.by_discriminator();
                scoring
            }
            None => Self::from_parts(
                DetectorKind::default(),
                epoch,
                scores,
                RowDetail::default(),
                Arc::new(NoExplanation),
            ),
        }
    }

    /// The same networks' detail and explanations under new `scores` (the feedback layer
    /// moved the scores; the networks, and so the detail, did not change).
    pub fn with_scores(&self, scores: Vec<f64>) -> Self {
        let mut scoring = Self::from_parts(
            self.detector,
            self.epoch,
            scores,
            self.detail.clone(),
            self.explainer.clone(),
        );
        scoring.members = self.members;
        scoring.by_discriminator = self.by_discriminator.clone();
        scoring.file = self.file.clone();
        scoring.explains_ensemble = self.explains_ensemble;
        scoring
    }

    /// This scoring with ranks among every row of the file `file` describes.
    pub fn within(mut self, file: Option<Arc<FileRanks>>) -> Self {
        self.file = file;
        self
    }

    /// Scoring of one model from plain per-row values (also how tests and benchmarks
    /// build one).
    pub fn from_parts(
        detector: DetectorKind,
        epoch: usize,
        scores: Vec<f64>,
        detail: RowDetail,
        explainer: Arc<dyn Explain>,
    ) -> Self {
        let n = scores.len();
        let order = ranking(&scores);
        let mut position = vec![0u32; n];
        for (p, &row) in order.iter().enumerate() {
            position[row as usize] = p as u32;
        }
        Self {
            detector,
            epoch,
            scores,
            members: 1,
            by_discriminator: Vec::new(),
            order,
            position,
            detail,
            file: None,
            explains_ensemble: false,
            explainer,
        }
    }

    /// Number of rows scored.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// `true` when no row was scored.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// 1-based rank of `row` (1 = highest score) among every row of the file.
    pub fn rank(&self, row: usize) -> usize {
        let above = self.file.as_ref().map_or(0, |f| f.above(self.scores[row]));
        self.position[row] as usize + 1 + above
    }

    /// Rows of the file ranked: the table's, or every row of the file it comes from.
    pub fn file_rows(&self) -> usize {
        self.file.as_ref().map_or(self.len(), |f| {
            usize::try_from(f.rows).unwrap_or(usize::MAX)
        })
    }

    /// Share of the file's rows with a lower score, in percent.
    pub fn percentile(&self, row: usize) -> f64 {
        let n = self.file_rows();
        100.0 * n.saturating_sub(self.rank(row)) as f64 / n.max(1) as f64
    }

    /// How many of the table's top rows lie within the top `share` of the file's rows:
    /// the rows flagged at that threshold.
    pub fn flagged(&self, share: f64) -> usize {
        let wanted = ((share * self.file_rows() as f64).round() as usize).min(self.file_rows());
        // A row's file rank grows with its position in the table.
        self.order[..self.len().min(wanted)]
            .partition_point(|&row| self.rank(row as usize) <= wanted)
    }

    /// The detector's error on each encoded feature of `row`.
    pub fn feature_errors(&self, row: usize) -> Vec<f32> {
        self.explainer.feature_errors(row)
    }

    /// Each column's contribution to `row`'s score relative to the typical row (the
    /// columns as ranges of encoded features, as `LoadedData::feature_columns` gives them).
    pub fn why(&self, row: usize, columns: &[Range<usize>]) -> Option<Attribution> {
        self.explainer.attribution(row, columns, ATTRIBUTION_STEPS)
    }

    /// The `count` columns that contribute most to `row`'s score, with their shares of its
    /// difference from the typical row: the `why_1…` columns of an export. A coarser
    /// staircase than the inspect view's (4 steps) so that exporting thousands of rows
    /// takes seconds; the order of the top columns rarely changes with more.
    pub fn top_reasons(
        &self,
        row: usize,
        columns: &[(String, Range<usize>)],
        count: usize,
    ) -> Vec<(String, f64)> {
        let ranges: Vec<_> = columns.iter().map(|(_, r)| r.clone()).collect();
        let Some(why) = self
            .explainer
            .attribution(row, &ranges, EXPORT_ATTRIBUTION_STEPS)
        else {
            return Vec::new();
        };
        let shares = why.shares();
        why.ranked()
            .into_iter()
            .take(count)
            .map(|g| (columns[g].0.clone(), shares[g]))
            .collect()
    }
}

/// Row indices by descending score, ties in file order: the one ranking rule of the
/// table, score files and metrics.
pub fn ranking(scores: &[f64]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(a.cmp(&b))
    });
    order
}

impl fmt::Debug for Scoring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoring")
            .field("epoch", &self.epoch)
            .field("rows", &self.len())
            .field("detector", &self.detector)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Scoring {
    fn eq(&self, other: &Self) -> bool {
        self.epoch == other.epoch && self.scores == other.scores && self.detail == other.detail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_scores_keep_the_networks_detail_and_re_rank() {
        let detail = RowDetail {
            groups: vec![crate::model::DetailGroup {
                title: "z".into(),
                names: vec!["z1".into()],
                values: vec![0.5, 0.25, 0.75],
                shares: false,
            }],
        };
        let mut s = Scoring::from_parts(
            DetectorKind::Dagmm,
            4,
            vec![3.0, 2.0, 1.0],
            detail.clone(),
            Arc::new(NoExplanation),
        );
        s.members = 5;
        let moved = s.with_scores(vec![1.0, 2.0, 3.0]);
        assert_eq!(
            (moved.order.clone(), moved.position.clone()),
            (vec![2, 1, 0], vec![2, 1, 0])
        );
        assert_eq!((moved.detail, moved.members, moved.epoch), (detail, 5, 4));
    }

    #[test]
    fn a_table_within_a_file_ranks_and_flags_among_every_row_of_the_file() {
        let s = Scoring::from_parts(
            DetectorKind::Dagmm,
            1,
            vec![9.0, 1.0, 5.0],
            RowDetail::default(),
            Arc::new(NoExplanation),
        )
        .within(Some(Arc::new(FileRanks {
            rows: 10,
            rest: vec![7.0, 6.0, 4.0, 3.0, 2.0, 0.5, 0.0],
        })));
        assert_eq!((0..3).map(|r| s.rank(r)).collect::<Vec<_>>(), [1, 8, 4]);
        assert_eq!((s.file_rows(), s.percentile(2)), (10, 60.0));
        // The top 40 % of the file is ranks 1-4: two of the table's rows.
        assert_eq!((s.flagged(0.4), s.flagged(0.3), s.flagged(1.0)), (2, 1, 3));
        assert_eq!(
            s.with_scores(vec![0.1, 1.0, 5.0]).rank(0),
            9,
            "the file stays"
        );
    }

    #[test]
    fn ranks_follow_descending_score_and_ties_keep_file_order() {
        let s = Scoring::from_parts(
            DetectorKind::Dagmm,
            1,
            vec![1.0, 5.0, 1.0, 3.0],
            RowDetail::default(),
            Arc::new(NoExplanation),
        );
        assert_eq!(s.order, vec![1, 3, 0, 2]);
        assert_eq!(
            (0..4).map(|r| s.rank(r)).collect::<Vec<_>>(),
            vec![3, 1, 4, 2]
        );
        assert_eq!(s.percentile(1), 75.0);
    }
}

/// Rows per chunk when a whole file is scored as it streams.
const SCORE_CHUNK_ROWS: usize = 8192;

/// What streaming a file through [`score_file`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streamed {
    /// Records in the file (rows `--missing drop` skipped included).
    pub records: u64,
    /// Categorical cells with a level the encoder never saw (encoded as all zeros).
    pub unseen_levels: u64,
}

/// Scores every row of `data` in chunks, as `encoder` encodes them, by each of
/// `ensembles`, handing each chunk and its scores (one list per ensemble) to `each`:
/// memory stays one chunk whatever the file's size. `score`, `train` on a sample and the
/// workbench on a sample all stream through this. The columns read are `schema`'s: the
/// encoder's, or a table's that has them all and those the encoder dropped (to show them).
pub fn score_file(
    data: &std::path::Path,
    read: &ReadOptions,
    schema: &Schema,
    encoder: &Encoder,
    ensembles: &[&Ensemble],
    mut each: impl FnMut(RawTable, &[Vec<f64>]) -> anyhow::Result<()>,
) -> anyhow::Result<Streamed> {
    let mut unseen_levels = 0;
    let records = crate::data::table::read_chunks(data, read, schema, SCORE_CHUNK_ROWS, |chunk| {
        let all: Vec<usize> = (0..chunk.len()).collect();
        let encoded = encoder.transform(&chunk, &all);
        unseen_levels += encoded.unseen_levels;
        let scores: Vec<Vec<f64>> = ensembles
            .iter()
            .map(|e| e.scores(&encoded.matrix))
            .collect();
        each(chunk, &scores)
    })?;
    Ok(Streamed {
        records,
        unseen_levels,
    })
}

//! Marks that answer at once: a light layer over the detector's scores, refitted after
//! every mark, in the manner of Active Anomaly Discovery (Das et al.) and Deep Isolation
//! Forest's idea of a forest over the detector's representation.
//!
//! An isolation forest is grown once on the rows (its splits draw columns by their spread:
//! `spread_weights`); each row runs down one path per tree.
//! A row's score is its detector score (standardised: median 0, the top-τ quantile 1, and
//! compressed by `asinh` above it, so that a bounded weight can still reorder rows whose
//! raw scores are far out in the tail) plus
//! the weights of the nodes on its paths (every node but the roots: a leaf alone would
//! separate look-alike rows that an inner node still holds together), all zero until the
//! analyst marks rows, so with no mark the ranking is the detector's own. After each mark the weights are refitted from zero to
//! minimise AAD's hinge around the τ-quantile `q` of the current scores: a marked anomaly
//! wants to be at least [`ANOMALY_MARGIN`] above `q`, a marked normal below `q`, plus a pull
//! of every weight towards zero whose strength falls as marks accumulate. Rows that share
//! leaves with a marked row move with it: a near-copy of a marked anomaly rises, rows like
//! a marked normal sink.

use crate::data::Matrix;
use crate::model::iforest::IsolationForest;

/// Marks between two fine-tunes of the networks (the workbench fine-tunes when marks
/// arrive after training; the discovery harness every this many marks).
pub const FINE_TUNE_EVERY: usize = 25;
/// Steps of one fine-tune, per member.
pub const FINE_TUNE_STEPS: usize = 40;

/// The share of rows above the hinge's quantile (AAD's τ).
pub const TAU: f64 = 0.03;
/// How far above the τ-quantile a marked anomaly is lifted, in units of the detector's
/// standardised score (where the τ-quantile is 1 and the median 0).
pub const ANOMALY_MARGIN: f64 = 1.0;
/// Trees of the layer's forest.
const TREES: usize = 100;
/// Rounds of the fit (each recomputes `q` over every row) and passes over the marks in each.
const ROUNDS: usize = 2;
const PASSES: usize = 40;
/// Step of a node weight per pass, as a share of the τ-quantile's distance from the median
/// spread over the nodes of a row's paths (about 8 a tree: a row's score moves by about
/// `8 × TREES × STEP` per pass).
const STEP: f64 = 0.05 / (8 * TREES) as f64;
/// Strength of the pull towards zero weights with one mark (divided by the marks' count).
const PRIOR: f64 = 1.0;

/// The detector's scores with leaf weights learnt from marks.
#[derive(Debug, Clone)]
pub struct FeedbackLayer {
    /// Per row: the detector's score, standardised by `scale` (median, spread).
    base: Vec<f64>,
    scale: (f64, f64),
    /// Row-major `rows × trees` leaf ids.
    leaves: Vec<u32>,
    /// Every node's parent (`u32::MAX` at a root).
    parents: Vec<u32>,
    trees: usize,
    weights: Vec<f64>,
    scores: Vec<f64>,
    /// The marks learnt from: row and whether it was marked anomalous.
    marks: Vec<(usize, bool)>,
}

/// The median of `values` and the distance from it to the `1 − TAU` quantile: the scale
/// the layer works in (median 0, the τ-quantile 1).
fn scale_of(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len().max(1) - 1) as f64 * q).round() as usize];
    let (median, top) = (at(0.5), at(1.0 - TAU));
    (median, (top - median).max(1e-12))
}

/// `values` in the layer's units: standardised by `scale`, then `asinh(b) / asinh(1)`
/// (monotone: the detector's order is kept; the median stays 0 and the τ-quantile 1).
fn to_layer(values: &[f64], (median, spread): (f64, f64)) -> Vec<f64> {
    let one = 1f64.asinh();
    values
        .iter()
        .map(|v| ((v - median) / spread).asinh() / one)
        .collect()
}

/// The inverse of [`to_layer`]: layer units back to the detector's.
fn from_layer(value: f64, (median, spread): (f64, f64)) -> f64 {
    (value * 1f64.asinh()).sinh() * spread + median
}

/// Rows a column's most common value is counted over (evenly spaced: on a large file the
/// share is estimated, not counted).
const SPREAD_SAMPLE: usize = 4096;

/// Each column's odds of being drawn for a split of the layer's forest: (1 − the share of
/// rows holding its most common value)², over up to [`SPREAD_SAMPLE`] rows.
///
/// A column that is mostly one value (a sparse count, a zero-filled measurement, a one-hot
/// code) lets a random split cut off the few rows holding a rare value, so paths through
/// such splits group rows by which rare values they hold rather than by where they lie in
/// the bulk, and a marked normal's push on those paths drags unlike rows down with it
/// (arrhythmia: 130 of 274 columns hold one value in at least 80 % of rows). Drawn by their
/// spread squared, such columns stay in the forest but seldom shape it.
fn spread_weights(x: &Matrix) -> Vec<f64> {
    let stride = x.rows.div_ceil(SPREAD_SAMPLE).max(1);
    let sampled: Vec<usize> = (0..x.rows).step_by(stride).collect();
    let mut column = Vec::with_capacity(sampled.len());
    (0..x.cols)
        .map(|c| {
            column.clear();
            column.extend(sampled.iter().map(|&r| x.data[r * x.cols + c]));
            column.sort_by(f32::total_cmp);
            let most_common = column
                .chunk_by(|a, b| a == b)
                .map(<[f32]>::len)
                .max()
                .unwrap_or(0);
            (1.0 - most_common as f64 / column.len().max(1) as f64).powi(2)
        })
        .collect()
}

impl FeedbackLayer {
    /// A layer over `scores` (the detector's, one per row of `forest_rows`), its forest
    /// grown on `forest_rows` with `seed`.
    pub fn new(scores: &[f64], forest_rows: &Matrix, seed: u64) -> Self {
        let forest =
            IsolationForest::fit_weighted(forest_rows, TREES, seed, &spread_weights(forest_rows));
        let leaves = forest.leaves(forest_rows);
        let scale = scale_of(scores);
        let base = to_layer(scores, scale);
        FeedbackLayer {
            scores: base.clone(),
            base,
            scale,
            leaves,
            parents: forest.parents(),
            trees: forest.trees(),
            weights: vec![0.0; forest.leaf_count()],
            marks: Vec::new(),
        }
    }

    /// Every row's score: the detector's plus its learnt node weights, in the detector's
    /// units (with no mark, exactly the detector's scores).
    pub fn scores(&self) -> Vec<f64> {
        self.scores
            .iter()
            .map(|&s| from_layer(s, self.scale))
            .collect()
    }

    /// How many marks the layer has learnt from.
    pub fn marks(&self) -> usize {
        self.marks.len()
    }

    /// New detector scores (a fine-tune or a refit changed them): the marks are learnt again
    /// on top of them.
    pub fn set_base(&mut self, scores: &[f64]) {
        self.scale = scale_of(scores);
        self.base = to_layer(scores, self.scale);
        let marks = std::mem::take(&mut self.marks);
        self.learn(&marks);
    }

    /// Refits the weights from zero on `marks` (row, marked anomalous) and rescores.
    pub fn learn(&mut self, marks: &[(usize, bool)]) {
        self.marks = marks.to_vec();
        self.weights.iter_mut().for_each(|w| *w = 0.0);
        // With no weight a row's score is its base: no walk down the trees needed.
        self.scores.clone_from(&self.base);
        if marks.is_empty() {
            return;
        }
        let decay = 1.0 - STEP * PRIOR / marks.len() as f64;
        for _ in 0..ROUNDS {
            let q = self.quantile(1.0 - TAU);
            for _ in 0..PASSES {
                for &(row, anomalous) in marks {
                    let s = self.score_of(row);
                    let push = if anomalous {
                        (s < q + ANOMALY_MARGIN).then_some(STEP)
                    } else {
                        (s > q).then_some(-STEP)
                    };
                    if let Some(delta) = push {
                        for t in 0..self.trees {
                            let mut node = self.leaves[row * self.trees + t];
                            while self.parents[node as usize] != u32::MAX {
                                self.weights[node as usize] += delta;
                                node = self.parents[node as usize];
                            }
                        }
                    }
                }
                self.weights.iter_mut().for_each(|w| *w *= decay);
            }
            self.rescore();
        }
    }

    /// The row's detector score plus the weights on its paths (roots excluded).
    fn score_of(&self, row: usize) -> f64 {
        let mut sum = self.base[row];
        for &leaf in &self.leaves[row * self.trees..(row + 1) * self.trees] {
            let mut node = leaf;
            while self.parents[node as usize] != u32::MAX {
                sum += self.weights[node as usize];
                node = self.parents[node as usize];
            }
        }
        sum
    }

    /// Every row's score from the weight sum of each node's path (one pass over the nodes:
    /// a child's id is above its parent's), then one lookup per tree and row.
    fn rescore(&mut self) {
        use rayon::prelude::*;
        let mut path_sum = vec![0f64; self.weights.len()];
        for node in 0..path_sum.len() {
            let parent = self.parents[node];
            if parent != u32::MAX {
                path_sum[node] = path_sum[parent as usize] + self.weights[node];
            }
        }
        let trees = self.trees;
        self.scores = (0..self.base.len())
            .into_par_iter()
            .map(|r| {
                let leaves = &self.leaves[r * trees..(r + 1) * trees];
                self.base[r] + leaves.iter().map(|&l| path_sum[l as usize]).sum::<f64>()
            })
            .collect();
    }

    /// The `q` quantile of the current scores.
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.scores.clone();
        let at = ((sorted.len().max(1) - 1) as f64 * q).round() as usize;
        let (_, v, _) = sorted.select_nth_unstable_by(at, f64::total_cmp);
        *v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 400 rows in two groups: a big cloud near the origin and a small group of look-alike
    /// rows at (3, 3); the detector scores the look-alikes as ordinary.
    fn data() -> (Matrix, Vec<f64>) {
        let mut x = Vec::new();
        let mut scores = Vec::new();
        for i in 0..400 {
            let t = i as f32 / 400.0;
            if i < 390 {
                x.extend([(t * 91.0).sin(), (t * 37.0).cos()]);
                scores.push(f64::from((t * 13.0).sin()));
            } else {
                x.extend([3.0 + t * 0.01, 3.0 - t * 0.01]);
                scores.push(0.0);
            }
        }
        let rows = Matrix {
            rows: 400,
            cols: 2,
            data: x,
        };
        (rows, scores)
    }

    #[test]
    fn spread_weights_follow_the_share_of_the_most_common_value() {
        // Columns: three quarters one value; all distinct; constant.
        let x = Matrix {
            rows: 4,
            cols: 3,
            data: vec![0.0, 1.0, 5.0, 0.0, 2.0, 5.0, 0.0, 3.0, 5.0, 7.0, 4.0, 5.0],
        };
        let w = spread_weights(&x);
        let expected = [0.0625, 0.5625, 0.0];
        for (got, want) in w.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{w:?}");
        }
    }

    #[test]
    fn no_mark_keeps_the_detectors_ranking_and_a_marked_anomaly_lifts_its_look_alikes() {
        let (x, scores) = data();
        let mut layer = FeedbackLayer::new(&scores, &x, 0);
        let order = |s: &[f64]| crate::train::ranking(s);
        assert_eq!(order(&layer.scores()), order(&scores));
        // In the layer's own units (median 0, τ-quantile 1), as the hinge sees them.
        let before: Vec<f64> = layer.scores.clone();
        let q = layer.quantile(1.0 - TAU);
        layer.learn(&[(395, true)]);
        let after = &layer.scores;
        assert!(
            after[395] >= q,
            "the marked row is lifted above the quantile: {} < {q}",
            after[395]
        );
        for r in 390..400 {
            assert!(
                after[r] > before[r] + 0.5,
                "look-alike {r}: {} → {}",
                before[r],
                after[r]
            );
        }
        // A marked normal sinks below the quantile.
        let top = order(&layer.scores())[0] as usize;
        layer.learn(&[(395, true), (top, false)]);
        assert!(layer.scores[top] <= layer.quantile(1.0 - TAU) + 1e-9);
        // The fast rescore (path sums) agrees with walking each row's paths.
        for r in (0..400).step_by(7) {
            assert!((layer.scores[r] - layer.score_of(r)).abs() < 1e-9);
        }
        assert_eq!(layer.marks(), 2);
    }
}

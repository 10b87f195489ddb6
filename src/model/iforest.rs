//! IsolationForest (Liu, Ting & Zhou, 2008) as scikit-learn runs it by default: the
//! classical reference column of `eval`, computed in the same run as DAGMM so that a
//! figure always has its baseline beside it, and the leaves the analyst's marks reweight
//! (`train::feedback`). Not a detector of the workbench.
//!
//! Defaults as scikit-learn's `IsolationForest()`: 100 trees, each grown on
//! `min(256, n)` rows drawn without replacement, all features, depth limited to
//! `ceil(log2(sample))`; a split picks a feature that varies in the node uniformly and a
//! threshold uniformly between its minimum and maximum there. A row's path length is its
//! leaf depth plus `c(leaf size)`, and its score `2^(−mean path / c(sample))` (higher =
//! more anomalous, scikit-learn's `-score_samples`).

use rand::{rngs::StdRng, seq::index::sample, Rng, SeedableRng};

use crate::data::Matrix;

/// Euler–Mascheroni constant, for the harmonic number approximation.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// One node of a tree: a split, or a leaf holding how many training rows reached it.
#[derive(Debug, Clone)]
enum Node {
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
    },
    Leaf {
        size: usize,
    },
}

/// A fitted forest.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    trees: Vec<Vec<Node>>,
    /// Rows each tree was grown on (normalises the path lengths).
    sample: usize,
}

/// `c(n)`: the average path length of an unsuccessful search in a binary search tree of
/// `n` items, which normalises depths (scikit-learn's `_average_path_length`).
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let m = (n - 1) as f64;
            2.0 * (m.ln() + EULER_GAMMA) - 2.0 * m / n as f64
        }
    }
}

impl IsolationForest {
    /// Grows `trees` trees on the rows of `x`; the same seed gives the same forest.
    pub fn fit(x: &Matrix, trees: usize, seed: u64) -> Self {
        Self::grow_forest(x, trees, seed, None)
    }

    /// As [`IsolationForest::fit`], but a split draws among the features that vary in its
    /// node in proportion to `weights` (one per column) rather than uniformly: the feedback
    /// layer's forest draws mostly-constant columns seldom (`train::feedback`).
    pub fn fit_weighted(x: &Matrix, trees: usize, seed: u64, weights: &[f64]) -> Self {
        assert_eq!(weights.len(), x.cols, "one weight per column");
        Self::grow_forest(x, trees, seed, Some(weights))
    }

    fn grow_forest(x: &Matrix, trees: usize, seed: u64, weights: Option<&[f64]>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let sample_size = x.rows.min(256);
        let max_depth = (sample_size.max(2) as f64).log2().ceil() as usize;
        let trees = (0..trees)
            .map(|_| {
                let mut rows = sample(&mut rng, x.rows, sample_size).into_vec();
                let mut nodes = Vec::new();
                grow(x, &mut rows, 0, max_depth, &mut nodes, &mut rng, weights);
                nodes
            })
            .collect();
        Self {
            trees,
            sample: sample_size,
        }
    }

    /// Leaves over all trees (leaf ids from [`IsolationForest::leaves`] are below this).
    pub fn leaf_count(&self) -> usize {
        self.trees.iter().map(Vec::len).sum()
    }

    /// Trees in the forest.
    pub fn trees(&self) -> usize {
        self.trees.len()
    }

    /// The parent of every node, by the ids of [`IsolationForest::leaves`] (`u32::MAX` for
    /// a tree's root): a row's path runs from its leaf up through these.
    pub fn parents(&self) -> Vec<u32> {
        let mut parents = Vec::with_capacity(self.leaf_count());
        let mut offset = 0u32;
        for tree in &self.trees {
            let start = parents.len();
            parents.resize(start + tree.len(), u32::MAX);
            for (id, node) in tree.iter().enumerate() {
                if let Node::Split { left, right, .. } = node {
                    parents[start + left] = offset + id as u32;
                    parents[start + right] = offset + id as u32;
                }
            }
            offset += tree.len() as u32;
        }
        parents
    }

    /// The leaf every row of `x` falls into in every tree, row-major `rows × trees`, as
    /// ids unique over the forest (a tree's node index plus the nodes of the trees before).
    pub fn leaves(&self, x: &Matrix) -> Vec<u32> {
        let offsets: Vec<usize> = self
            .trees
            .iter()
            .scan(0, |acc, t| {
                let at = *acc;
                *acc += t.len();
                Some(at)
            })
            .collect();
        (0..x.rows)
            .flat_map(|i| {
                let row = x.row(i);
                self.trees
                    .iter()
                    .zip(&offsets)
                    .map(move |(t, &o)| (o + leaf_of(t, row).0) as u32)
            })
            .collect()
    }

    /// Anomaly score of every row of `x` in `(0, 1]`; higher is more anomalous.
    pub fn scores(&self, x: &Matrix) -> Vec<f64> {
        let norm = average_path_length(self.sample).max(f64::MIN_POSITIVE);
        (0..x.rows)
            .map(|i| {
                let row = x.row(i);
                let total: f64 = self.trees.iter().map(|t| path_length(t, row)).sum();
                2f64.powf(-total / self.trees.len() as f64 / norm)
            })
            .collect()
    }
}

/// Grows the subtree over `rows` at `depth`, appending its nodes; returns its index.
/// `weights`, if given, are the features' odds of being drawn for a split.
fn grow(
    x: &Matrix,
    rows: &mut [usize],
    depth: usize,
    max_depth: usize,
    nodes: &mut Vec<Node>,
    rng: &mut StdRng,
    weights: Option<&[f64]>,
) -> usize {
    let id = nodes.len();
    nodes.push(Node::Leaf { size: rows.len() });
    if rows.len() <= 1 || depth >= max_depth {
        return id;
    }
    // Features that vary over these rows, with their ranges; none left makes a leaf.
    let ranges: Vec<(usize, f32, f32)> = (0..x.cols)
        .filter_map(|f| {
            let (lo, hi) = rows
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &r| {
                    let v = x.data[r * x.cols + f];
                    (lo.min(v), hi.max(v))
                });
            (hi > lo).then_some((f, lo, hi))
        })
        .collect();
    if ranges.is_empty() {
        return id;
    }
    let (feature, lo, hi) = ranges[draw_feature(&ranges, weights, rng)];
    let threshold = lo + rng.gen::<f32>() * (hi - lo);
    // Keep both sides non-empty even where f32 rounding lands on the maximum.
    let threshold = if threshold >= hi { lo } else { threshold };
    let mut split = 0;
    for i in 0..rows.len() {
        if x.data[rows[i] * x.cols + feature] <= threshold {
            rows.swap(i, split);
            split += 1;
        }
    }
    let (left_rows, right_rows) = rows.split_at_mut(split);
    let left = grow(x, left_rows, depth + 1, max_depth, nodes, rng, weights);
    let right = grow(x, right_rows, depth + 1, max_depth, nodes, rng, weights);
    nodes[id] = Node::Split {
        feature,
        threshold,
        left,
        right,
    };
    id
}

/// The index into `ranges` (the node's varying features) of the feature a split uses:
/// uniform without `weights` or where the candidates' weights are all zero, else in
/// proportion to them.
fn draw_feature(ranges: &[(usize, f32, f32)], weights: Option<&[f64]>, rng: &mut StdRng) -> usize {
    let total: f64 = weights.map_or(0.0, |w| ranges.iter().map(|r| w[r.0]).sum());
    let Some(weights) = weights.filter(|_| total > 0.0) else {
        return rng.gen_range(0..ranges.len());
    };
    let mut left = rng.gen::<f64>() * total;
    for (i, &(feature, ..)) in ranges.iter().enumerate() {
        left -= weights[feature];
        if left < 0.0 {
            return i;
        }
    }
    // Rounding left a sliver: the last candidate with any weight.
    ranges
        .iter()
        .rposition(|r| weights[r.0] > 0.0)
        .unwrap_or(ranges.len() - 1)
}

/// Depth of the leaf `row` falls into, plus `c(leaf size)` for the rows it still held.
fn path_length(tree: &[Node], row: &[f32]) -> f64 {
    let (leaf, depth) = leaf_of(tree, row);
    match tree[leaf] {
        Node::Leaf { size } => depth as f64 + average_path_length(size),
        Node::Split { .. } => unreachable!("leaf_of ends at a leaf"),
    }
}

/// The node index of the leaf `row` falls into, and its depth.
fn leaf_of(tree: &[Node], row: &[f32]) -> (usize, usize) {
    let (mut node, mut depth) = (0usize, 0usize);
    while let Node::Split {
        feature,
        threshold,
        left,
        right,
    } = tree[node]
    {
        node = if row[feature] <= threshold {
            left
        } else {
            right
        };
        depth += 1;
    }
    (node, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_path_length_matches_scikit_learn() {
        // sklearn.ensemble._iforest._average_path_length([1, 2, 3, 256])
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        assert!((average_path_length(3) - 1.207_392_357_589_623).abs() < 1e-12);
        assert!((average_path_length(256) - 10.244_770_920_119_917).abs() < 1e-12);
    }

    #[test]
    fn isolated_points_score_high_and_the_seed_fixes_the_forest() {
        // 500 rows on a unit square grid-ish cloud, 5 far away.
        let mut rng = StdRng::seed_from_u64(7);
        let mut data = Vec::new();
        for _ in 0..500 {
            data.extend([rng.gen::<f32>(), rng.gen::<f32>()]);
        }
        for i in 0..5 {
            data.extend([5.0 + i as f32, -4.0]);
        }
        let x = Matrix {
            rows: 505,
            cols: 2,
            data,
        };
        let forest = IsolationForest::fit(&x, 100, 1);
        let scores = forest.scores(&x);
        // Every outlier above every inlier (AUROC 1).
        let inlier_max = scores[..500].iter().copied().fold(f64::MIN, f64::max);
        assert!(scores[500..].iter().all(|&s| s > inlier_max));
        // scikit-learn's scores: outliers well above 0.5, the cloud below it on average.
        assert!(
            scores[500..].iter().all(|&s| s > 0.6),
            "{:?}",
            &scores[500..]
        );
        let inlier_mean = scores[..500].iter().sum::<f64>() / 500.0;
        assert!((0.35..0.5).contains(&inlier_mean), "{inlier_mean}");
        assert_eq!(IsolationForest::fit(&x, 100, 1).scores(&x), scores);
        assert_ne!(IsolationForest::fit(&x, 100, 2).scores(&x), scores);
    }

    #[test]
    fn feature_weights_steer_which_features_split() {
        let mut rng = StdRng::seed_from_u64(3);
        let data: Vec<f32> = (0..600).map(|_| rng.gen()).collect();
        let x = Matrix {
            rows: 200,
            cols: 3,
            data,
        };
        let split_features = |forest: &IsolationForest| {
            let mut counts = [0usize; 3];
            for node in forest.trees.iter().flatten() {
                if let Node::Split { feature, .. } = node {
                    counts[*feature] += 1;
                }
            }
            counts
        };
        let never_the_last = IsolationForest::fit_weighted(&x, 20, 0, &[1.0, 1.0, 0.0]);
        let counts = split_features(&never_the_last);
        assert_eq!(counts[2], 0, "{counts:?}");
        assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
        let mostly_the_first = IsolationForest::fit_weighted(&x, 20, 0, &[8.0, 1.0, 1.0]);
        let counts = split_features(&mostly_the_first);
        assert!(counts[0] > 3 * (counts[1] + counts[2]), "{counts:?}");
        // All-zero weights fall back to the uniform draw instead of panicking.
        let uniform = IsolationForest::fit_weighted(&x, 20, 0, &[0.0; 3]);
        assert_eq!(
            uniform.scores(&x),
            IsolationForest::fit(&x, 20, 0).scores(&x)
        );
    }

    #[test]
    fn constant_data_gives_equal_scores_without_panicking() {
        let x = Matrix {
            rows: 10,
            cols: 3,
            data: vec![1.0; 30],
        };
        let scores = IsolationForest::fit(&x, 10, 0).scores(&x);
        assert!(scores.windows(2).all(|w| w[0] == w[1]));
    }
}

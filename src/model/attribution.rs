//! Why a row scores what it scores: each column's contribution to the row's score relative
//! to a typical row, for any detector (it needs only the detector's scores).
//!
//! The path from the typical row `r` to the row `x` is the straight line, walked as a
//! staircase: `steps` steps, and within each step the columns move one after the other by
//! `(x − r) / steps` (a categorical column's one-hot features move together, so they add
//! up to that column). A column's contribution is the sum of the score changes its moves
//! caused. As `steps` grows this is the integrated gradient of the score along the line
//! (Sundararajan et al. 2017), summed over each column's features; at any `steps` the
//! contributions add up to `score(x) − score(r)` exactly, because the changes telescope.
//! Alternating the column order from one step to the next keeps the order from favouring
//! the columns that move first. No gradient is needed: the networks score every point of
//! the staircase in one batch.

use std::ops::Range;

use crate::data::Matrix;

/// Steps of the staircase the inspect view and exports use: at most 1 + 16 × columns
/// rows to score, a few milliseconds for either detector.
pub const ATTRIBUTION_STEPS: usize = 16;

/// A row's score explained column by column.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// Contribution of each column group, in the groups' order.
    pub contributions: Vec<f64>,
    /// The row's score.
    pub score: f64,
    /// The typical row's score.
    pub reference_score: f64,
}

impl Attribution {
    /// Groups by contribution, largest first (ties in group order).
    pub fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.contributions.len()).collect();
        order.sort_by(|&a, &b| self.contributions[b].total_cmp(&self.contributions[a]));
        order
    }

    /// Each group's contribution as a share of the score difference (signed; they sum
    /// to 1 when the difference is not zero, else all 0).
    pub fn shares(&self) -> Vec<f64> {
        let difference = self.score - self.reference_score;
        self.contributions
            .iter()
            .map(|c| {
                if difference.abs() > 0.0 {
                    c / difference
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// Each of `groups`' contribution to `score(row) − score(reference)` along the staircase
/// described in the module docs. `score` scores every row of a matrix (the detector's or
/// ensemble's own score); `groups` are ranges of encoded features that cover the row.
pub fn path_attribution(
    score: impl Fn(&Matrix) -> Vec<f64>,
    row: &[f32],
    reference: &[f32],
    groups: &[Range<usize>],
    steps: usize,
) -> Attribution {
    let cols = row.len();
    let steps = steps.max(1);
    let mut point = reference.to_vec();
    let mut data = Vec::with_capacity((1 + steps * groups.len()) * cols);
    data.extend_from_slice(&point);
    let mut moved = Vec::with_capacity(steps * groups.len());
    for step in 0..steps {
        let order: Vec<usize> = if step % 2 == 0 {
            (0..groups.len()).collect()
        } else {
            (0..groups.len()).rev().collect()
        };
        let fraction = (step + 1) as f32 / steps as f32;
        for g in order {
            for f in groups[g].clone() {
                // The last step lands on the row itself, not on a rounding of it.
                point[f] = if step + 1 == steps {
                    row[f]
                } else {
                    reference[f] + fraction * (row[f] - reference[f])
                };
            }
            data.extend_from_slice(&point);
            moved.push(g);
        }
    }
    let points = Matrix {
        rows: 1 + moved.len(),
        cols,
        data,
    };
    let scores = score(&points);
    let mut contributions = vec![0f64; groups.len()];
    for (i, &g) in moved.iter().enumerate() {
        contributions[g] += scores[i + 1] - scores[i];
    }
    Attribution {
        contributions,
        score: scores[scores.len() - 1],
        reference_score: scores[0],
    }
}

/// Rows the typical row is computed over at most (evenly spaced): medians of 100,000 rows
/// are those of the whole table to a fraction of a percentile, in milliseconds.
const TYPICAL_ROWS: usize = 100_000;

/// The typical row of `data`: per group, the median of a single feature, and the most
/// frequent level of a one-hot group (its features set to that level's one-hot).
pub fn typical_row(data: &Matrix, groups: &[Range<usize>]) -> Vec<f32> {
    let stride = data.rows.div_ceil(TYPICAL_ROWS).max(1);
    let rows: Vec<usize> = (0..data.rows).step_by(stride).collect();
    let mut typical = vec![0f32; data.cols];
    for group in groups {
        if group.len() == 1 {
            let f = group.start;
            let mut values: Vec<f32> = rows.iter().map(|&r| data.row(r)[f]).collect();
            if !values.is_empty() {
                let middle = values.len() / 2;
                typical[f] = *values.select_nth_unstable_by(middle, f32::total_cmp).1;
            }
        } else {
            let mut counts = vec![0usize; group.len()];
            for &r in &rows {
                let features = &data.row(r)[group.clone()];
                if let Some(level) = features.iter().position(|&v| v > 0.5) {
                    counts[level] += 1;
                }
            }
            let mode = (0..counts.len()).max_by_key(|&l| (counts[l], std::cmp::Reverse(l)));
            if let Some(level) = mode {
                typical[group.start + level] = 1.0;
            }
        }
    }
    typical
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) -> Matrix {
        Matrix {
            rows,
            cols,
            data: (0..rows * cols).map(|i| f(i / cols, i % cols)).collect(),
        }
    }

    #[test]
    fn a_linear_score_gets_its_exact_terms_and_an_interaction_is_split_evenly() {
        // score = 2·x0 − x1 + 3·x2 (x2 and x3 one column): contributions are the terms.
        let linear = |m: &Matrix| {
            (0..m.rows)
                .map(|r| {
                    let x = m.row(r);
                    2.0 * x[0] as f64 - x[1] as f64 + 3.0 * x[2] as f64
                })
                .collect()
        };
        let groups = [0..1, 1..2, 2..4];
        let a = path_attribution(linear, &[1.0, 2.0, 1.0, 0.0], &[0.0; 4], &groups, 4);
        let expected = [2.0, -2.0, 3.0];
        for (c, e) in a.contributions.iter().zip(expected) {
            assert!((c - e).abs() < 1e-6, "{:?}", a.contributions);
        }
        assert_eq!(a.ranked(), [2, 0, 1]);
        // score = x0·x1: integrated gradients give each half (the alternating order
        // makes the staircase symmetric).
        let product = |m: &Matrix| {
            (0..m.rows)
                .map(|r| (m.row(r)[0] * m.row(r)[1]) as f64)
                .collect()
        };
        let a = path_attribution(product, &[1.0, 1.0], &[0.0, 0.0], &[0..1, 1..2], 8);
        assert!(
            (a.contributions[0] - 0.5).abs() < 1e-6,
            "{:?}",
            a.contributions
        );
        assert!((a.score - 1.0).abs() < 1e-9 && a.reference_score == 0.0);
        let shares = a.shares();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_typical_row_takes_medians_and_the_most_frequent_level() {
        // Column 0 numeric; columns 1..4 a one-hot of three levels, level 2 most frequent.
        let data = matrix(5, 4, |r, c| match c {
            0 => r as f32 * 10.0,
            _ => f32::from(u8::from(c - 1 == [2, 2, 0, 1, 2][r])),
        });
        let groups = [0..1, 1..4];
        assert_eq!(typical_row(&data, &groups), [20.0, 0.0, 0.0, 1.0]);
    }
}

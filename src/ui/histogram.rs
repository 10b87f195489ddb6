//! The distribution of a scoring's scores, counted once when the scoring arrives and drawn
//! by the distribution pane at whatever width it has. Plain data: the table state keeps it
//! beside the scores, the pane only draws it.

/// Bins computed once per scoring; columns merge them to the pane's width.
pub const FINE_BINS: usize = 256;

/// Scores counted into [`FINE_BINS`] equal bins over their symmetric-log range.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// symlog of the lowest and highest score.
    pub lo: f64,
    pub hi: f64,
    /// Rows per bin, lowest scores first.
    pub counts: Vec<u32>,
}

/// Symmetric log: keeps the sign, so an axis shows values below zero too (scores below
/// the median, DAGMM's negative energies on the loss pane's log scale).
pub fn symlog(v: f64) -> f64 {
    v.signum() * (1.0 + v.abs()).log10()
}

impl Histogram {
    /// Counts `scores` (non-finite ones left out).
    pub fn of(scores: &[f64]) -> Self {
        let xs = scores.iter().filter(|v| v.is_finite()).map(|&v| symlog(v));
        let (lo, hi) = xs
            .clone()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if lo > hi {
            return Self::default();
        }
        let span = (hi - lo).max(1e-12);
        let mut counts = vec![0u32; FINE_BINS];
        for x in xs {
            let bin = (((x - lo) / span) * FINE_BINS as f64) as usize;
            counts[bin.min(FINE_BINS - 1)] += 1;
        }
        Self { lo, hi, counts }
    }

    /// `columns` merged bins as (rows, of which flagged), given that the `flagged`
    /// highest-scoring rows are flagged.
    pub fn columns(&self, columns: usize, flagged: usize) -> Vec<(u32, u32)> {
        if self.counts.is_empty() || columns == 0 {
            return Vec::new();
        }
        let mut merged = vec![0u32; columns];
        for (i, &c) in self.counts.iter().enumerate() {
            merged[i * columns / self.counts.len()] += c;
        }
        let mut left = flagged as u64;
        let mut out = vec![(0, 0); columns];
        for (i, &c) in merged.iter().enumerate().rev() {
            let f = (c as u64).min(left);
            left -= f;
            out[i] = (c, f as u32);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_split_the_flagged_rows_from_the_top() {
        let scores: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let h = Histogram::of(&scores);
        assert_eq!(h.counts.iter().sum::<u32>(), 100);
        let cols = h.columns(4, 30);
        assert_eq!(cols.iter().map(|c| c.0).sum::<u32>(), 100);
        assert_eq!(cols.iter().map(|c| c.1).sum::<u32>(), 30);
        // Flagged rows fill the highest column first.
        assert_eq!(cols[3].1, cols[3].0.min(30));
        assert_eq!(cols[0].1, 0);
        assert!(Histogram::of(&[f64::NAN]).columns(4, 1).is_empty());
    }
}

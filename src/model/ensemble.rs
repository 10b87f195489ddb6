//! Ensembles: several detectors trained from different seeds, scored together. One model
//! is an ensemble of one, so training, checkpoints, `score`, the workbench and `eval` all
//! score through [`Ensemble::scores`].
//!
//! Members are combined by the mean of their *calibrated* scores: each member's raw score
//! (DAGMM: the sample energy; EGBAD: its weighted reconstruction and discriminator terms) is centred on its median and divided by its interquartile
//! range over the rows it was fitted on, so members whose raw scales differ weigh the same.
//! No label is involved anywhere.

use serde::{Deserialize, Serialize};

use super::dagmm::{Dagmm, Inference};
use super::dense::{Dev, ParamMut, Params};
use super::detector::{Detector, DetectorKind, Fit, RowDetail};
use super::gmm::{FactorisedGmm, GmmParams};
use crate::data::Matrix;

/// Robust standardisation of one member's raw scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Median raw score over the fitted rows.
    pub median: f64,
    /// Interquartile range of the raw scores over the fitted rows (floored above zero).
    pub spread: f64,
}

impl Calibration {
    /// The median and interquartile range of `raw` (NaN-free, at least one value).
    pub fn fit(raw: &[f64]) -> Self {
        let mut sorted = raw.to_vec();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            sorted
                .get(((sorted.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Self {
            median: quantile(0.5),
            spread: (quantile(0.75) - quantile(0.25)).max(1e-12),
        }
    }

    /// `raw` on the common scale of the ensemble.
    pub fn apply(&self, raw: f64) -> f64 {
        (raw - self.median) / self.spread
    }
}

/// A trained DAGMM with the mixture fitted over its training rows: ready to score (its
/// score is the sample energy).
#[derive(Clone)]
pub struct FittedDagmm {
    pub model: Dagmm,
    pub dev: Dev,
    pub gmm: GmmParams,
    factors: FactorisedGmm,
}

impl FittedDagmm {
    /// Pairs networks with their mixture; an error when the mixture cannot be factorised.
    pub fn new(model: Dagmm, dev: Dev, gmm: GmmParams) -> Result<Self, String> {
        let factors = gmm.factorise()?;
        Ok(Self {
            model,
            dev,
            gmm,
            factors,
        })
    }

    /// Fits the mixture of `model` over the rows of `x` that `keep` allows (every row when
    /// `None`: rows an analyst marked anomalous are left out) and scores every row. Returns
    /// the fitted detector, every row's z and γ̂, and every row's energy.
    pub fn fit(
        model: Dagmm,
        dev: Dev,
        x: &Matrix,
        keep: Option<&[bool]>,
    ) -> Result<(Self, Inference, Vec<f64>), String> {
        let out = model.infer(&dev, x);
        let c = &model.config;
        let (d, k) = (c.z_width(), c.components);
        let fit_over = |keep: Option<&[bool]>| {
            GmmParams::fit(
                &kept_rows(&out.z, d, keep),
                &kept_rows(&out.gamma, k, keep),
                d,
                k,
                c.cov_eps,
            )
        };
        let mut gmm = fit_over(keep);
        if c.trim > 0.0 {
            // As in training: the highest-energy share of the fitted rows is suspected and
            // left out of the mixture the scores come from.
            let energies = gmm.factorise()?.energies(&out.z);
            let trimmed = trim_highest(&energies, keep, c.trim);
            gmm = fit_over(Some(&trimmed));
        }
        let fitted = Self::new(model, dev, gmm)?;
        let energies = fitted.factors.energies(&out.z);
        Ok((fitted, out, energies))
    }

    /// Sample energy of every row of `x`.
    pub fn energies(&self, x: &Matrix) -> Vec<f64> {
        self.model.energies(&self.dev, x, &self.factors)
    }
}

/// `keep` (every row when `None`) without the `share` of its rows with the highest `scores`.
pub fn trim_highest(scores: &[f64], keep: Option<&[bool]>, share: f64) -> Vec<bool> {
    let mut out: Vec<bool> = (0..scores.len())
        .map(|i| keep.is_none_or(|k| k.get(i).copied().unwrap_or(true)))
        .collect();
    let mut kept: Vec<usize> = (0..scores.len()).filter(|&i| out[i]).collect();
    let count = (share.clamp(0.0, 0.5) * kept.len() as f64).floor() as usize;
    kept.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    for &i in kept.iter().take(count) {
        out[i] = false;
    }
    out
}

/// The rows (`width` values each) of row-major `all` that `keep` allows (all of them
/// when `None`).
pub fn kept_rows(all: &[f64], width: usize, keep: Option<&[bool]>) -> Vec<f64> {
    match keep {
        None => all.to_vec(),
        Some(keep) => all
            .chunks(width)
            .zip(keep)
            .filter(|(_, &k)| k)
            .flat_map(|(row, _)| row.iter().copied())
            .collect(),
    }
}

/// One member of an ensemble: a fitted detector, its calibration and where it came from.
#[derive(Clone)]
pub struct Member {
    pub detector: Detector,
    pub calibration: Calibration,
    /// Seed of its weights and batch order.
    pub seed: u64,
    /// Epochs it was trained for (0: untrained).
    pub epochs_done: usize,
}

impl Member {
    /// A member from a detector's `fit` over the rows `keep` allows: calibrated over
    /// those rows' raw scores. Returns the member and every row's calibrated score.
    pub fn new(
        fit: Fit,
        keep: Option<&[bool]>,
        seed: u64,
        epochs_done: usize,
    ) -> (Self, Vec<f64>, RowDetail) {
        let member = Self {
            detector: fit.detector,
            calibration: Calibration::fit(&kept_rows(&fit.raw, 1, keep)),
            seed,
            epochs_done,
        };
        let scores = member.calibrate(fit.raw);
        (member, scores, fit.detail)
    }

    /// Calibrated score of every row of `x`.
    pub fn scores(&self, x: &Matrix) -> Vec<f64> {
        self.calibrate(self.detector.raw_scores(x))
    }

    /// Refits what the detector fits after training (DAGMM: the mixture) and the
    /// calibration over the rows of `x` that `keep` allows, and returns every row's
    /// calibrated score. The networks stay as trained.
    pub fn refit(&mut self, x: &Matrix, keep: Option<&[bool]>) -> Result<Vec<f64>, String> {
        let fit = self.detector.refit(x, keep)?;
        let (refitted, scores, _) = Member::new(fit, keep, self.seed, self.epochs_done);
        *self = refitted;
        Ok(scores)
    }

    /// `raw` scores of this member put on the ensemble's common scale.
    pub fn calibrate(&self, mut raw: Vec<f64>) -> Vec<f64> {
        raw.iter_mut().for_each(|s| *s = self.calibration.apply(*s));
        raw
    }
}

/// Members scored together.
#[derive(Clone, Default)]
pub struct Ensemble {
    pub members: Vec<Member>,
}

impl Ensemble {
    /// The ensemble score of every row of `x`: the mean calibrated member score.
    pub fn scores(&self, x: &Matrix) -> Vec<f64> {
        let per_member: Vec<Vec<f64>> = self.members.iter().map(|m| m.scores(x)).collect();
        mean_scores(&per_member)
    }

    /// Refits every member over the rows `keep` allows (see [`Member::refit`]) and returns
    /// the ensemble score of every row of `x`.
    pub fn refit(&mut self, x: &Matrix, keep: Option<&[bool]>) -> Result<Vec<f64>, String> {
        let per_member = self
            .members
            .iter_mut()
            .map(|m| m.refit(x, keep))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(mean_scores(&per_member))
    }

    /// Epochs of the least trained member (what "trained for N epochs" can honestly say).
    pub fn epochs_done(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.epochs_done)
            .min()
            .unwrap_or(0)
    }

    /// The members (1-based) that score by L_D alone ([`Detector::scores_by_discriminator`]).
    pub fn by_discriminator(&self) -> Vec<usize> {
        (1..=self.members.len())
            .filter(|&m| self.members[m - 1].detector.scores_by_discriminator())
            .collect()
    }

    /// The members' detector (`None` when empty).
    pub fn kind(&self) -> Option<DetectorKind> {
        self.members.first().map(|m| m.detector.kind())
    }

    /// One line naming the members' architecture and how many there are.
    pub fn describe(&self) -> String {
        let first = self.members.first().map(|m| m.detector.describe());
        match (first, self.members.len()) {
            (Some(d), 1) => d,
            (Some(d), n) => format!("{d} ×{n}"),
            (None, _) => "empty ensemble".into(),
        }
    }
}

/// Every member's parameters, named `member{i}.…`: one weights file holds the ensemble.
impl Params for Ensemble {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        for (i, member) in self.members.iter_mut().enumerate() {
            member
                .detector
                .visit_params(&format!("{prefix}.member{i}"), f);
        }
    }
}

/// Element-wise mean of equally long calibrated score vectors (empty in, empty out).
pub fn mean_scores(members: &[Vec<f64>]) -> Vec<f64> {
    let Some(first) = members.first() else {
        return Vec::new();
    };
    let n = members.len() as f64;
    (0..first.len())
        .map(|i| members.iter().map(|m| m[i]).sum::<f64>() / n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_centres_on_the_median_and_scales_by_the_iqr() {
        let c = Calibration::fit(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((c.median, c.spread), (3.0, 2.0));
        assert_eq!(c.apply(7.0), 2.0);
        // Constant scores: the floor keeps the scale finite.
        let flat = Calibration::fit(&[1.0, 1.0]);
        assert!(flat.apply(2.0).is_finite());
    }

    #[test]
    fn mean_scores_averages_members_row_by_row() {
        let m = mean_scores(&[vec![1.0, 2.0], vec![3.0, 6.0]]);
        assert_eq!(m, vec![2.0, 4.0]);
        assert!(mean_scores(&[]).is_empty());
    }
}

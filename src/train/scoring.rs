//! Every row scored by the current networks, as plain data: the ranked table, the inspect
//! view and the live metrics read a [`Scoring`] and never touch the model.

use std::fmt;
use std::sync::Arc;

use crate::data::Matrix;
use crate::model::dense::Dev;
use crate::model::{Dagmm, Detector, Ensemble, Inference};

/// Answers "why is this row flagged?" on demand: computing x̂ for one row takes
/// microseconds, storing it for every row would double the memory of the data.
pub trait Explain: Send + Sync {
    /// Squared reconstruction error of each encoded feature of `row`.
    fn reconstruction_error(&self, row: usize) -> Vec<f32>;
}

/// The networks frozen at scoring time, with the encoded data they scored.
struct FrozenModel {
    model: Dagmm,
    dev: Dev,
    data: Arc<Matrix>,
}

impl Explain for FrozenModel {
    fn reconstruction_error(&self, row: usize) -> Vec<f32> {
        let x = self.data.row(row);
        let x_hat = self.model.reconstruct(&self.dev, x);
        x.iter()
            .zip(&x_hat)
            .map(|(a, b)| (a - b) * (a - b))
            .collect()
    }
}

/// Explains nothing: an empty ensemble has no networks.
struct NoModel;

impl Explain for NoModel {
    fn reconstruction_error(&self, _: usize) -> Vec<f32> {
        Vec::new()
    }
}

/// Scores, ranks, z and γ̂ of every row at one point of training.
pub struct Scoring {
    /// Epochs completed (by the member in training) when the rows were scored.
    pub epoch: usize,
    /// Ensemble score per row (file order): the mean over members of each member's energy,
    /// centred on its median and divided by its interquartile range. High means anomalous.
    pub scores: Vec<f64>,
    /// Members in the ensemble that scored; z and γ̂ below are those of the last of them.
    pub members: usize,
    /// Row indices, most anomalous first (ties keep file order).
    pub order: Vec<u32>,
    /// 0-based position of each row in `order`.
    pub position: Vec<u32>,
    /// Width of one z: latent code, relative distance, cosine similarity.
    pub z_width: usize,
    /// `rows × z_width`.
    pub z: Vec<f64>,
    /// Mixture components K.
    pub components: usize,
    /// `rows × K` memberships γ̂.
    pub gamma: Vec<f64>,
    explainer: Arc<dyn Explain>,
}

impl Scoring {
    /// Scoring from the ensemble `scores`, and z and γ̂ of its last member (`members` in
    /// all) with the networks that produced them, which the inspect view explains.
    pub fn new(
        epoch: usize,
        scores: Vec<f64>,
        inference: Inference,
        model: &Dagmm,
        dev: &Dev,
        data: Arc<Matrix>,
        members: usize,
    ) -> Self {
        let explainer = Arc::new(FrozenModel {
            model: model.clone(),
            dev: dev.clone(),
            data,
        });
        let mut scoring = Self::from_parts(
            epoch,
            scores,
            inference.z,
            inference.gamma,
            model.config.components,
            explainer,
        );
        scoring.members = members;
        scoring
    }

    /// Scoring of a trained `ensemble` whose scores over `data` are `scores`; z and γ̂ come
    /// from its last member.
    pub fn of_ensemble(ensemble: &Ensemble, scores: Vec<f64>, data: Arc<Matrix>) -> Self {
        let members = ensemble.members.len();
        let epoch = ensemble.epochs_done();
        match ensemble.members.last().map(|m| &m.detector) {
            Some(Detector::Dagmm(shown)) => {
                let inference = shown.model.infer(&shown.dev, &data);
                Self::new(
                    epoch,
                    scores,
                    inference,
                    &shown.model,
                    &shown.dev,
                    data,
                    members,
                )
            }
            None => Self::from_parts(epoch, scores, Vec::new(), Vec::new(), 1, Arc::new(NoModel)),
        }
    }

    /// Scoring of one model from plain per-row values (also how tests and benchmarks
    /// build one).
    pub fn from_parts(
        epoch: usize,
        scores: Vec<f64>,
        z: Vec<f64>,
        gamma: Vec<f64>,
        components: usize,
        explainer: Arc<dyn Explain>,
    ) -> Self {
        let n = scores.len();
        let order = ranking(&scores);
        let mut position = vec![0u32; n];
        for (p, &row) in order.iter().enumerate() {
            position[row as usize] = p as u32;
        }
        Self {
            epoch,
            z_width: z.len() / n.max(1),
            scores,
            members: 1,
            order,
            position,
            z,
            components,
            gamma,
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

    /// 1-based rank of `row` (1 = highest score).
    pub fn rank(&self, row: usize) -> usize {
        self.position[row] as usize + 1
    }

    /// Share of rows with a lower score, in percent.
    pub fn percentile(&self, row: usize) -> f64 {
        let n = self.len();
        100.0 * (n - self.rank(row)) as f64 / n.max(1) as f64
    }

    /// z of `row`.
    pub fn z_of(&self, row: usize) -> &[f64] {
        &self.z[row * self.z_width..(row + 1) * self.z_width]
    }

    /// γ̂ of `row`.
    pub fn gamma_of(&self, row: usize) -> &[f64] {
        &self.gamma[row * self.components..(row + 1) * self.components]
    }

    /// Squared reconstruction error per encoded feature of `row`.
    pub fn reconstruction_error(&self, row: usize) -> Vec<f32> {
        self.explainer.reconstruction_error(row)
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
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Scoring {
    fn eq(&self, other: &Self) -> bool {
        self.epoch == other.epoch
            && self.scores == other.scores
            && self.z == other.z
            && self.gamma == other.gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoExplain;
    impl Explain for NoExplain {
        fn reconstruction_error(&self, _: usize) -> Vec<f32> {
            Vec::new()
        }
    }

    #[test]
    fn ranks_follow_descending_score_and_ties_keep_file_order() {
        let s = Scoring::from_parts(
            1,
            vec![1.0, 5.0, 1.0, 3.0],
            vec![0.0; 8],
            vec![1.0; 4],
            1,
            Arc::new(NoExplain),
        );
        assert_eq!(s.order, vec![1, 3, 0, 2]);
        assert_eq!(
            (0..4).map(|r| s.rank(r)).collect::<Vec<_>>(),
            vec![3, 1, 4, 2]
        );
        assert_eq!(s.percentile(1), 75.0);
        assert_eq!(s.z_width, 2);
    }
}

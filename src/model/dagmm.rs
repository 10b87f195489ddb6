//! DAGMM (Zong et al., ICLR 2018): compression network, estimation network, and one
//! training step of the end-to-end objective.
//!
//! The mixture part of the loss goes through [`gmm::mixture_objective`], which returns the
//! exact gradients ∂/∂z and ∂/∂γ̂; the step then backpropagates the surrogate
//! `recon + Σ z ⊙ G_z + Σ γ̂ ⊙ G_γ` (G constant), so dfdx carries exactly those gradients
//! into both networks while the true loss components are reported separately.

use anyhow::{anyhow, Result};
use dfdx::prelude::*;
use dfdx::tensor::Gradients;
use rand::{rngs::StdRng, SeedableRng};

use super::config::DagmmConfig;
use super::dense::{Dev, Mat, Mlp, ParamMut, Params, Vector};
use super::gmm::{self, FactorisedGmm, MixtureObjective};
use crate::data::Matrix;

/// Guards the norms in the relative distance and cosine similarity (a zero row must not make NaN).
const NORM_EPS: f32 = 1e-6;
/// Rows per forward pass when scoring.
const INFER_CHUNK: usize = 8192;

/// A DAGMM: its configuration and three networks.
#[derive(Debug, Clone)]
pub struct Dagmm {
    pub config: DagmmConfig,
    pub encoder: Mlp,
    pub decoder: Mlp,
    pub estimation: Mlp,
}

/// The loss components of one step (the quantities the UI plots).
#[derive(Debug, Clone, PartialEq)]
pub struct StepLoss {
    /// Mean over the batch of ‖x − x'‖² (summed over features, as in the paper).
    pub reconstruction: f64,
    /// Mean sample energy E(z).
    pub energy: f64,
    /// Covariance penalty P(Σ̂).
    pub penalty: f64,
    /// `reconstruction + λ1·energy + λ2·penalty`.
    pub total: f64,
    /// φ̂ of the batch.
    pub phi: Vec<f64>,
    /// Diagonal jitter Cholesky needed (0 when none).
    pub jitter: f64,
}

/// What the trained networks say about some rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// `n × z_width`: [z_c, relative distance, cosine similarity].
    pub z: Vec<f64>,
    /// `n × K` memberships γ̂.
    pub gamma: Vec<f64>,
}

impl Dagmm {
    /// A freshly initialised DAGMM; the same seed gives the same weights.
    pub fn new(dev: &Dev, config: DagmmConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let encoder_widths = config.encoder_widths();
        let decoder_widths: Vec<usize> = encoder_widths.iter().rev().copied().collect();
        let estimation_widths = [
            config.z_width(),
            config.estimation_hidden,
            config.components,
        ];
        Self {
            encoder: Mlp::new(dev, &encoder_widths, &mut rng),
            decoder: Mlp::new(dev, &decoder_widths, &mut rng),
            estimation: Mlp::new(dev, &estimation_widths, &mut rng),
            config,
        }
    }

    /// Forward pass: returns z, γ̂ and each row's squared reconstruction error.
    fn forward<T: Tape<f32, Dev>>(&self, x: Mat<T>, training: bool) -> (Mat<T>, Mat<T>, Vector<T>) {
        let n = x.shape().0;
        let x_plain: Mat = x.retaped::<NoneTape>();
        let z_c = self.encoder.forward(x, None);
        let x_hat = self.decoder.forward(z_c.with_empty_tape(), None);

        let sq_err = (x_hat.with_empty_tape() - x_plain.clone())
            .square()
            .sum::<(usize,), Axis<1>>();
        let x_norm = x_plain.clone().square().sum::<(usize,), Axis<1>>().sqrt() + NORM_EPS;
        let x_hat_norm = (x_hat.with_empty_tape().square().sum::<(usize,), Axis<1>>()
            + NORM_EPS * NORM_EPS)
            .sqrt();
        let relative = (sq_err.with_empty_tape() + NORM_EPS * NORM_EPS).sqrt() / x_norm.clone();
        let dot = (x_hat * x_plain).sum::<(usize,), Axis<1>>();
        let cosine = dot / (x_hat_norm * x_norm);

        let z = (z_c, relative.reshape_like(&(n, 1usize))).concat_along(Axis::<1>);
        let z = (z, cosine.reshape_like(&(n, 1usize))).concat_along(Axis::<1>);
        let dropout = training.then_some(self.config.dropout).filter(|&p| p > 0.0);
        let gamma = self
            .estimation
            .forward(z.with_empty_tape(), dropout)
            .softmax::<Axis<1>>();
        (z, gamma, sq_err)
    }

    /// One forward + backward pass on a batch: the loss components and the gradients of
    /// every parameter. The caller decides whether to apply them (a non-finite loss is not).
    /// Takes the batch by value: its buffer becomes the input tensor without a copy.
    pub fn train_step(&self, dev: &Dev, batch: Matrix) -> Result<(StepLoss, Gradients<f32, Dev>)> {
        let (n, d, k) = (batch.rows, self.config.z_width(), self.config.components);
        let x: Mat = dev.tensor_from_vec(batch.data, (n, batch.cols));
        let (z, gamma, sq_err) = self.forward(x.leaky_trace(), true);
        let z_values: Vec<f64> = z.as_vec().into_iter().map(f64::from).collect();
        let gamma_values: Vec<f64> = gamma.as_vec().into_iter().map(f64::from).collect();
        let reconstruction = sq_err.as_vec().iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let c = &self.config;
        let MixtureObjective {
            energy,
            penalty,
            phi,
            grad_z,
            grad_gamma,
            jitter,
        } = gmm::mixture_objective(
            &z_values,
            &gamma_values,
            d,
            k,
            c.lambda_energy,
            c.lambda_cov,
            c.cov_eps,
        )
        .map_err(|e| anyhow!(e))?;
        let to_tensor = |g: Vec<f64>, cols: usize| -> Mat {
            dev.tensor_from_vec(g.into_iter().map(|v| v as f32).collect(), (n, cols))
        };
        let surrogate = sq_err.mean()
            + (z * to_tensor(grad_z, d)).sum::<Rank0, _>()
            + (gamma * to_tensor(grad_gamma, k)).sum::<Rank0, _>();
        let grads = surrogate.backward();
        let total = reconstruction + c.lambda_energy * energy + c.lambda_cov * penalty;
        Ok((
            StepLoss {
                reconstruction,
                energy,
                penalty,
                total,
                phi,
                jitter,
            },
            grads,
        ))
    }

    /// z and γ̂ for every row of `x` (evaluation mode: no dropout, no tape).
    pub fn infer(&self, dev: &Dev, x: &Matrix) -> Inference {
        let mut out = Inference {
            z: Vec::with_capacity(x.rows * self.config.z_width()),
            gamma: Vec::with_capacity(x.rows * self.config.components),
        };
        for start in (0..x.rows).step_by(INFER_CHUNK) {
            let end = (start + INFER_CHUNK).min(x.rows);
            let chunk: Mat = dev.tensor_from_vec(
                x.data[start * x.cols..end * x.cols].to_vec(),
                (end - start, x.cols),
            );
            let (z, gamma, _) = self.forward(chunk, false);
            out.z.extend(z.as_vec().into_iter().map(f64::from));
            out.gamma.extend(gamma.as_vec().into_iter().map(f64::from));
        }
        out
    }

    /// The reconstruction x̂ of one encoded row (evaluation mode): the inspect view compares
    /// it with the row feature by feature.
    pub fn reconstruct(&self, dev: &Dev, row: &[f32]) -> Vec<f32> {
        let x: Mat = dev.tensor_from_vec(row.to_vec(), (1, row.len()));
        let z_c = self.encoder.forward(x, None);
        self.decoder.forward(z_c, None).as_vec()
    }

    /// Sample energy of every row of `x` under the mixture `gmm` (high = anomalous).
    pub fn energies(&self, dev: &Dev, x: &Matrix, gmm: &FactorisedGmm) -> Vec<f64> {
        gmm.energies(&self.infer(dev, x).z)
    }
}

impl Params for Dagmm {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        self.encoder.visit_params(&format!("{prefix}.encoder"), f);
        self.decoder.visit_params(&format!("{prefix}.decoder"), f);
        self.estimation
            .visit_params(&format!("{prefix}.estimation"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dense::Adam;

    fn toy_batch(n: usize, cols: usize) -> Matrix {
        let data = (0..n * cols)
            .map(|i| ((i * 37 % 101) as f32) / 101.0)
            .collect();
        Matrix {
            rows: n,
            cols,
            data,
        }
    }

    #[test]
    fn every_parameter_receives_a_gradient_and_training_lowers_the_loss() {
        let dev = Dev::seed_from_u64(0);
        let mut config = DagmmConfig::default_for(8);
        config.dropout = 0.0;
        let mut model = Dagmm::new(&dev, config, 3);
        let batch = toy_batch(64, 8);
        let mut adam = Adam::new(1e-2);
        let (first, mut grads) = model.train_step(&dev, batch.clone()).unwrap();
        let mut nonzero = 0;
        let mut total = 0;
        model.visit_params("", &mut |_, p| {
            total += 1;
            let g = match p {
                ParamMut::Matrix(t) => grads.get(&*t).as_vec(),
                ParamMut::Vector(t) => grads.get(&*t).as_vec(),
            };
            if g.iter().any(|v| *v != 0.0) {
                nonzero += 1;
            }
        });
        assert_eq!(nonzero, total, "some parameter got no gradient");
        adam.update(&mut model, &mut grads).unwrap();
        let mut last = first.total;
        for _ in 0..200 {
            let (loss, mut grads) = model.train_step(&dev, batch.clone()).unwrap();
            adam.update(&mut model, &mut grads).unwrap();
            last = loss.total;
        }
        assert!(
            last < first.total,
            "loss went from {} to {last}",
            first.total
        );
    }

    #[test]
    fn zero_rows_give_finite_features() {
        let dev = Dev::seed_from_u64(0);
        let model = Dagmm::new(&dev, DagmmConfig::default_for(5), 1);
        let x = Matrix {
            rows: 3,
            cols: 5,
            data: vec![0.0; 15],
        };
        let out = model.infer(&dev, &x);
        assert!(out.z.iter().chain(&out.gamma).all(|v| v.is_finite()));
    }
}

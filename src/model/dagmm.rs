//! DAGMM (Zong et al., ICLR 2018): compression network, estimation network, and one
//! training step of the end-to-end objective.
//!
//! The mixture part of the loss goes through [`gmm::mixture_objective`], which returns the
//! exact gradients ∂/∂z and ∂/∂γ̂; the step then backpropagates the surrogate
//! `recon + Σ z ⊙ G_z + Σ γ̂ ⊙ G_γ` (G constant), so dfdx carries exactly those gradients
//! into both networks while the true loss components are reported separately.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use dfdx::prelude::*;
use dfdx::tensor::Gradients;
use rand::{rngs::StdRng, SeedableRng};
use rayon::prelude::*;

use super::config::DagmmConfig;
use super::dense::{Dev, Mat, Mlp, ParamMut, Params};
use super::gmm::FactorisedGmm;
use super::parallel::{split_rows, sum_gradients, StepThreads};
use super::roles::{self, BatchRoles, RoleObjective};
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

/// Each row's weight `c_r` in the reconstruction term `Σ_r c_r ‖x_r − x̂_r‖²`, read by the
/// backward pass of [`compression_features`]: set after the forward pass, once the step
/// knows which rows its roles keep in the loss (a trimmed or marked-anomalous row: 0).
#[derive(Debug, Clone)]
pub struct ReconWeights(Arc<Mutex<Vec<f32>>>);

impl ReconWeights {
    /// Every one of `rows` rows weighing `weight`.
    pub fn uniform(rows: usize, weight: f32) -> Self {
        ReconWeights(Arc::new(Mutex::new(vec![weight; rows])))
    }

    /// Replaces the weights (one per row).
    pub fn set(&self, weights: Vec<f32>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = weights;
    }

    fn get(&self) -> Vec<f32> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The reconstruction weights of a batch of `n` rows: `1 / (rows in the loss)` for each
/// row in the loss, 0 for the others (a weighted mean over the rows the roles keep).
fn recon_weights(in_loss: &[bool]) -> Vec<f32> {
    let kept = in_loss.iter().filter(|&&k| k).count().max(1) as f32;
    in_loss
        .iter()
        .map(|&k| if k { 1.0 / kept } else { 0.0 })
        .collect()
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

    /// Forward pass of the rows `x` (their values, `x_values`): z, γ̂ and each row's
    /// squared reconstruction error. With a tape, `recon` holds each row's weight in the
    /// reconstruction term (its gradient rides on z, see [`compression_features`]).
    fn forward<T: Tape<f32, Dev>>(
        &self,
        x: &Mat,
        x_values: &[f32],
        training: bool,
        recon: ReconWeights,
    ) -> (Mat<T>, Mat<T>, Vec<f32>) {
        let z_c: Mat<T> = self.encoder.forward_data(x);
        let x_hat = self.decoder.forward(z_c.with_empty_tape(), None);
        let (z, sq_err) = compression_features(z_c, x_hat, x_values, recon);
        let dropout = training.then_some(self.config.dropout).filter(|&p| p > 0.0);
        let gamma = self
            .estimation
            .forward(z.with_empty_tape(), dropout)
            .softmax::<Axis<1>>();
        (z, gamma, sq_err)
    }

    /// One forward + backward pass on a batch whose rows have `roles`: the loss components
    /// and the gradients of every parameter. The caller decides whether to apply them (a
    /// non-finite loss is not). Takes the batch by value: its buffer becomes the input
    /// tensor without a copy.
    pub fn train_step(
        &self,
        dev: &Dev,
        batch: Matrix,
        roles: BatchRoles<'_>,
    ) -> Result<(StepLoss, Gradients<f32, Dev>)> {
        let (n, d, k) = (batch.rows, self.config.z_width(), self.config.components);
        let x: Mat = dev.tensor_from_vec(batch.data, (n, batch.cols));
        let x_values = x.as_vec();
        let recon = ReconWeights::uniform(n, 1.0 / n as f32);
        let (z, gamma, sq_err) =
            self.forward::<OwnedTape<f32, Dev>>(&x, &x_values, true, recon.clone());
        let objective = self.objective(&z.as_vec(), &gamma.as_vec(), roles)?;
        recon.set(recon_weights(&objective.in_loss));
        let to_tensor = |g: &[f64], cols: usize| -> Mat {
            dev.tensor_from_vec(g.iter().map(|&v| v as f32).collect(), (n, cols))
        };
        // The reconstruction term's gradient is already on z's tape.
        let mixture = &objective.mixture;
        let surrogate = (z * to_tensor(&mixture.grad_z, d)).sum::<Rank0, _>()
            + (gamma * to_tensor(&mixture.grad_gamma, k)).sum::<Rank0, _>();
        let grads = surrogate.backward();
        Ok((self.step_loss(&sq_err, objective), grads))
    }

    /// [`Dagmm::train_step`] with the batch split over `threads`: each part's forward and
    /// backward pass runs on its own thread, the mixture objective over the whole batch
    /// joins them (the calling thread computes it), and the parts' gradients are summed.
    /// The same step as one pass, up to float summation order and dropout draws.
    pub fn train_step_split(
        &self,
        threads: &StepThreads,
        batch: Matrix,
        roles: BatchRoles<'_>,
    ) -> Result<(StepLoss, Gradients<f32, Dev>)> {
        let (n, cols) = (batch.rows, batch.cols);
        let (d, k) = (self.config.z_width(), self.config.components);
        let ranges = split_rows(n, threads.parts());
        let (to_join, joined) = mpsc::channel::<(usize, Vec<f32>, Vec<f32>, Vec<f32>)>();
        let mut reply_to = Vec::new();
        let mut replies = Vec::new();
        for _ in &ranges {
            let (tx, rx) = mpsc::channel::<(Vec<f32>, Vec<f32>, Vec<f32>)>();
            reply_to.push(tx);
            replies.push(Mutex::new(Some(rx)));
        }
        let part = |i: usize, dev: &Dev| -> Result<Gradients<f32, Dev>> {
            let Some(range) = ranges.get(i).cloned() else {
                return Ok(Gradients::leaky());
            };
            let m = range.len();
            let values = batch.data[range.start * cols..range.end * cols].to_vec();
            let x: Mat = dev.tensor_from_vec(values.clone(), (m, cols));
            let recon = ReconWeights::uniform(m, 1.0 / n as f32);
            let (z, gamma, sq_err) =
                self.forward::<OwnedTape<f32, Dev>>(&x, &values, true, recon.clone());
            to_join
                .send((i, z.as_vec(), gamma.as_vec(), sq_err))
                .map_err(|_| anyhow!("the step's mixture went away"))?;
            let reply = replies[i].lock().expect("reply lock").take();
            let (grad_z, grad_gamma, weights) = reply
                .and_then(|rx| rx.recv().ok())
                .ok_or_else(|| anyhow!("no mixture gradient for part {i}"))?;
            recon.set(weights);
            let grad_z: Mat = dev.tensor_from_vec(grad_z, (m, d));
            let grad_gamma: Mat = dev.tensor_from_vec(grad_gamma, (m, k));
            let surrogate = (z * grad_z).sum::<Rank0, _>() + (gamma * grad_gamma).sum::<Rank0, _>();
            Ok(surrogate.backward())
        };
        let all = &ranges;
        // Runs on the calling thread; consumed, it drops the reply channels, so on an error
        // the parts stop waiting.
        let join = move || -> Result<StepLoss> {
            let mut pieces = vec![None; all.len()];
            for _ in all {
                let (i, z, gamma, sq_err) = joined
                    .recv_timeout(Duration::from_secs(600))
                    .map_err(|_| anyhow!("a step thread went silent"))?;
                pieces[i] = Some((z, gamma, sq_err));
            }
            let pieces: Vec<_> = pieces.into_iter().flatten().collect();
            let z: Vec<f32> = pieces.iter().flat_map(|p| p.0.iter().copied()).collect();
            let gamma: Vec<f32> = pieces.iter().flat_map(|p| p.1.iter().copied()).collect();
            let sq_err: Vec<f32> = pieces.iter().flat_map(|p| p.2.iter().copied()).collect();
            let objective = self.objective(&z, &gamma, roles)?;
            let weights = recon_weights(&objective.in_loss);
            for ((range, tx), _) in all.iter().zip(&reply_to).zip(&pieces) {
                let slice = |g: &[f64], w: usize| -> Vec<f32> {
                    g[range.start * w..range.end * w]
                        .iter()
                        .map(|&v| v as f32)
                        .collect()
                };
                let mixture = &objective.mixture;
                let _ = tx.send((
                    slice(&mixture.grad_z, d),
                    slice(&mixture.grad_gamma, k),
                    weights[range.clone()].to_vec(),
                ));
            }
            Ok(self.step_loss(&sq_err, objective))
        };
        let (loss, grads) = threads.run(part, join);
        let loss = loss?;
        let mut grads = grads.into_iter().collect::<Result<Vec<_>>>()?;
        let mut sum = grads.remove(0);
        sum_gradients(&mut self.clone(), &mut sum, grads)?;
        Ok((loss, sum))
    }

    /// The mixture part of the loss over a batch's z and γ̂ (row-major, f32 as the
    /// networks give them) under the rows' roles, with its exact gradients.
    fn objective(&self, z: &[f32], gamma: &[f32], roles: BatchRoles<'_>) -> Result<RoleObjective> {
        let c = &self.config;
        let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
        let gamma: Vec<f64> = gamma.iter().map(|&v| f64::from(v)).collect();
        roles::role_objective(
            &z,
            &gamma,
            c.z_width(),
            c.components,
            roles,
            c.lambda_energy,
            c.lambda_cov,
            c.cov_eps,
        )
        .map_err(|e| anyhow!(e))
    }

    /// The loss components of a step from its rows' squared errors and objective (the
    /// reconstruction over the rows in the loss).
    fn step_loss(&self, sq_err: &[f32], objective: RoleObjective) -> StepLoss {
        let c = &self.config;
        let in_loss = objective.in_loss.iter().filter(|&&k| k).count().max(1);
        let reconstruction = sq_err
            .iter()
            .zip(&objective.in_loss)
            .filter(|(_, &k)| k)
            .map(|(&v, _)| v as f64)
            .sum::<f64>()
            / in_loss as f64;
        let objective = objective.mixture;
        StepLoss {
            reconstruction,
            energy: objective.energy,
            penalty: objective.penalty,
            total: reconstruction
                + c.lambda_energy * objective.energy
                + c.lambda_cov * objective.penalty,
            phi: objective.phi,
            jitter: objective.jitter,
        }
    }

    /// z and γ̂ for every row of `x` (evaluation mode: no dropout, no tape), chunks of rows
    /// in parallel over the current rayon pool.
    pub fn infer(&self, dev: &Dev, x: &Matrix) -> Inference {
        let chunks: Vec<(Vec<f32>, Vec<f32>)> = x
            .data
            .par_chunks(INFER_CHUNK * x.cols.max(1))
            .map(|rows| {
                let n = rows.len() / x.cols.max(1);
                let chunk: Mat = dev.tensor_from_vec(rows.to_vec(), (n, x.cols));
                let (z, gamma, _) =
                    self.forward::<NoneTape>(&chunk, rows, false, ReconWeights::uniform(0, 0.0));
                (z.as_vec(), gamma.as_vec())
            })
            .collect();
        Inference {
            z: chunks
                .iter()
                .flat_map(|c| &c.0)
                .map(|&v| f64::from(v))
                .collect(),
            gamma: chunks
                .iter()
                .flat_map(|c| &c.1)
                .map(|&v| f64::from(v))
                .collect(),
        }
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

/// z = [z_c, relative distance, cosine similarity] of each row from the code `z_c`, the
/// reconstruction `x_hat` and the rows' values `x`, as one dfdx operation of our own, with
/// each row's squared error ‖x − x̂‖². dfdx would take a dozen element-wise passes and
/// reductions over the n × D reconstruction; this is one forward and one backward.
///
/// With a tape, the backward pass also carries `∂ Σ_r c_r ‖x_r − x̂_r‖² / ∂x̂` (the weights
/// `c_r` of `recon`, read when the backward pass runs) into
/// x̂ — the reconstruction term of the loss, so the step needs no separate loss tensor.
pub fn compression_features<T: Tape<f32, Dev>>(
    z_c: Mat<T>,
    x_hat: Mat<T>,
    x: &[f32],
    recon: ReconWeights,
) -> (Mat<T>, Vec<f32>) {
    let (n, latent) = *z_c.shape();
    let cols = x_hat.shape().1;
    let width = latent + 2;
    let (z_c, tape) = z_c.split_tape();
    let (x_hat, other) = x_hat.split_tape();
    let mut tape = tape.merge(other);
    let mut h = vec![0f32; n * cols];
    x_hat.copy_into(&mut h);
    let mut z = vec![0f32; n * width];
    z_c.copy_into(&mut z[..n * latent]);
    // z_c's rows are `latent` wide: spread them to `width` from the last row back.
    for r in (0..n).rev() {
        z.copy_within(r * latent..(r + 1) * latent, r * width);
    }
    let mut sq_err = vec![0f32; n];
    // Per row: (√(s + ε²), ‖x‖ + ε, ‖x̂‖, cosine), kept for the backward pass.
    let mut norms = vec![[0f32; 4]; n];
    for r in 0..n {
        let (xr, hr) = (&x[r * cols..(r + 1) * cols], &h[r * cols..(r + 1) * cols]);
        let (mut s, mut xx, mut hh, mut dot) = (0f32, 0f32, 0f32, 0f32);
        for (a, b) in xr.iter().zip(hr) {
            let e = b - a;
            s += e * e;
            xx += a * a;
            hh += b * b;
            dot += a * b;
        }
        let root_s = (s + NORM_EPS * NORM_EPS).sqrt();
        let x_norm = xx.sqrt() + NORM_EPS;
        let h_norm = (hh + NORM_EPS * NORM_EPS).sqrt();
        let cosine = dot / (h_norm * x_norm);
        sq_err[r] = s;
        z[r * width + latent] = root_s / x_norm;
        z[r * width + latent + 1] = cosine;
        norms[r] = [root_s, x_norm, h_norm, cosine];
    }
    let dev = z_c.device().clone();
    let out: Mat = dev.tensor_from_vec(z, (n, width));
    if T::OWNS_TAPE {
        let (z_c_id, x_hat_id, out_id) = (z_c.ghost(), x_hat.ghost(), out.ghost());
        let x = x.to_vec();
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&out_id)?;
            let mut upstream = vec![0f32; n * width];
            grads.get(&out_id).copy_into(&mut upstream);
            let into_z_c = grads.get_or_alloc_mut(&z_c_id)?;
            for (r, g) in into_z_c.chunks_exact_mut(latent).enumerate() {
                let u = &upstream[r * width..r * width + latent];
                g.iter_mut().zip(u).for_each(|(g, u)| *g += u);
            }
            let into_x_hat = grads.get_or_alloc_mut(&x_hat_id)?;
            let weights = recon.get();
            for (r, g) in into_x_hat.chunks_exact_mut(cols).enumerate() {
                let recon = 2.0 * weights.get(r).copied().unwrap_or(0.0);
                let [root_s, x_norm, h_norm, cosine] = norms[r];
                let g_rel = upstream[r * width + latent] / (root_s * x_norm);
                let g_cos = upstream[r * width + latent + 1];
                let (xr, hr) = (&x[r * cols..(r + 1) * cols], &h[r * cols..(r + 1) * cols]);
                let along_x = g_cos / (h_norm * x_norm);
                let along_h = g_cos * cosine / (h_norm * h_norm);
                for ((g, a), b) in g.iter_mut().zip(xr).zip(hr) {
                    let e = b - a;
                    *g += (g_rel + recon) * e + along_x * a - along_h * b;
                }
            }
            Ok(())
        });
    }
    (out.put_tape(tape), sq_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dense::Adam;

    /// Central finite differences of `f` at `h`, element by element.
    fn numeric_gradient(h: &[f32], f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
        let step = 1e-3f32;
        (0..h.len())
            .map(|i| {
                let mut plus = h.to_vec();
                let mut minus = h.to_vec();
                plus[i] += step;
                minus[i] -= step;
                (f(&plus) - f(&minus)) / (2.0 * step as f64)
            })
            .collect()
    }

    #[test]
    fn compression_features_gradients_match_finite_differences() {
        let dev = Dev::seed_from_u64(0);
        let (n, latent, cols) = (3, 2, 5);
        let x: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 7 % 11) as f32) / 11.0)
            .collect();
        let h: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 5 % 13) as f32) / 13.0 - 0.2)
            .collect();
        let zc: Vec<f32> = vec![0.3, -0.1, 0.7, 0.2, -0.4, 0.9];
        // Weights on z's columns and the reconstruction term's weight.
        let w: Vec<f32> = (0..n * (latent + 2))
            .map(|i| 0.5 - 0.13 * i as f32)
            .collect();
        // Each row's weight in the reconstruction term (row 2 out of the loss), set only
        // after the forward pass, as a step does.
        let recon_weights = [0.2f32, 0.0, 0.5];
        let objective = |h: &[f32]| -> f64 {
            let zc: Mat = dev.tensor_from_vec(zc.clone(), (n, latent));
            let hh: Mat = dev.tensor_from_vec(h.to_vec(), (n, cols));
            let (z, sq) = compression_features(zc, hh, &x, ReconWeights::uniform(n, 0.0));
            let dot: f64 = z.as_vec().iter().zip(&w).map(|(a, b)| (a * b) as f64).sum();
            let recon: f64 = sq
                .iter()
                .zip(recon_weights)
                .map(|(&v, c)| (v * c) as f64)
                .sum();
            dot + recon
        };
        let zc_t: Mat = dev.tensor_from_vec(zc.clone(), (n, latent));
        let h_t: Mat = dev.tensor_from_vec(h.clone(), (n, cols));
        let recon = ReconWeights::uniform(n, 1.0);
        let (z, sq) =
            compression_features(zc_t.leaky_trace(), h_t.leaky_trace(), &x, recon.clone());
        recon.set(recon_weights.to_vec());
        let weights: Mat = dev.tensor_from_vec(w.clone(), (n, latent + 2));
        let grads = (z * weights).sum::<Rank0, _>().backward();
        let analytic = grads.get(&h_t).as_vec();
        let numeric = numeric_gradient(&h, objective);
        for (a, b) in analytic.iter().zip(&numeric) {
            assert!((*a as f64 - b).abs() < 2e-3 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // z_c passes straight through, and the squared errors are ‖x − x̂‖².
        let passed: Vec<f32> = (0..n).flat_map(|r| [w[r * 4], w[r * 4 + 1]]).collect();
        assert_eq!(grads.get(&zc_t).as_vec(), passed);
        let first: f32 = (0..cols).map(|j| (h[j] - x[j]).powi(2)).sum();
        assert!((sq[0] - first).abs() < 1e-6);
    }

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
        let (first, mut grads) = model
            .train_step(&dev, batch.clone(), BatchRoles::plain())
            .unwrap();
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
            let (loss, mut grads) = model
                .train_step(&dev, batch.clone(), BatchRoles::plain())
                .unwrap();
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

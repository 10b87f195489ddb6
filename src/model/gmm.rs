//! The Gaussian mixture side of DAGMM, in plain f64 Rust: closed-form mixture parameters
//! from memberships γ̂, sample energy through Cholesky factors, the covariance penalty,
//! and the exact gradients of `λ1·mean(E) + λ2·P` with respect to z and γ̂.
//!
//! dfdx 0.13 has no Cholesky, inverse or determinant, and these matrices are tiny
//! (d ≈ 3–10, K ≈ 2–8), so the energy term is computed here and handed back to the
//! network as constant gradients (see `model::dagmm`). Sums are in f64: in f32, Σ̂ over
//! hundreds of thousands of rows loses positive definiteness.

// Small dense linear algebra reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const LN_2PI: f64 = 1.837_877_066_409_345_5;
/// Guards `Σ γ` against a component with no membership at all.
const MASS_FLOOR: f64 = 1e-12;
/// Jitter attempts (each ten times larger) before a covariance is declared hopeless.
const JITTER_TRIES: usize = 12;

/// Mixture weights φ̂, means μ̂ and covariances Σ̂ (row-major `K × d × d`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GmmParams {
    pub k: usize,
    pub d: usize,
    pub phi: Vec<f64>,
    pub mu: Vec<f64>,
    pub cov: Vec<f64>,
}

impl GmmParams {
    /// Closed-form parameters from `n` samples: `z` is `n × d`, `gamma` is `n × k`
    /// (the step that replaces EM's M-step in DAGMM). `eps` is added to each diagonal.
    pub fn fit(z: &[f64], gamma: &[f64], d: usize, k: usize, eps: f64) -> Self {
        let n = z.len() / d;
        let mut mass = vec![0f64; k];
        let mut mu = vec![0f64; k * d];
        for i in 0..n {
            let zi = &z[i * d..(i + 1) * d];
            for c in 0..k {
                let g = gamma[i * k + c];
                mass[c] += g;
                for a in 0..d {
                    mu[c * d + a] += g * zi[a];
                }
            }
        }
        for c in 0..k {
            for a in 0..d {
                mu[c * d + a] /= mass[c] + MASS_FLOOR;
            }
        }
        let mut cov = vec![0f64; k * d * d];
        let mut diff = vec![0f64; d];
        for i in 0..n {
            for c in 0..k {
                let g = gamma[i * k + c];
                for a in 0..d {
                    diff[a] = z[i * d + a] - mu[c * d + a];
                }
                let sc = &mut cov[c * d * d..(c + 1) * d * d];
                for a in 0..d {
                    let ga = g * diff[a];
                    for b in 0..=a {
                        sc[a * d + b] += ga * diff[b];
                    }
                }
            }
        }
        for c in 0..k {
            let sc = &mut cov[c * d * d..(c + 1) * d * d];
            for a in 0..d {
                for b in 0..=a {
                    let v = sc[a * d + b] / (mass[c] + MASS_FLOOR);
                    sc[a * d + b] = v;
                    sc[b * d + a] = v;
                }
                sc[a * d + a] += eps;
            }
        }
        let phi = mass.iter().map(|m| m / n.max(1) as f64).collect();
        Self { k, d, phi, mu, cov }
    }

    /// The covariance penalty `P = Σ_k Σ_j 1 / Σ̂_k[j,j]`.
    pub fn penalty(&self) -> f64 {
        let d = self.d;
        (0..self.k)
            .flat_map(|c| (0..d).map(move |j| (c, j)))
            .map(|(c, j)| 1.0 / self.cov[c * d * d + j * d + j])
            .sum()
    }

    /// Factorises every covariance (adding growing jitter where Cholesky fails).
    pub fn factorise(&self) -> Result<FactorisedGmm, String> {
        let d = self.d;
        let mut chol = Vec::with_capacity(self.k * d * d);
        let mut log_norm = Vec::with_capacity(self.k);
        let mut jitter = 0f64;
        for c in 0..self.k {
            let (l, added) = cholesky_with_jitter(&self.cov[c * d * d..(c + 1) * d * d], d)
                .ok_or_else(|| {
                    format!(
                        "covariance of component {} is not usable (non-finite values)",
                        c + 1
                    )
                })?;
            jitter = jitter.max(added);
            let log_det: f64 = (0..d).map(|j| 2.0 * l[j * d + j].ln()).sum();
            log_norm.push(self.phi[c].max(1e-300).ln() - 0.5 * (d as f64 * LN_2PI + log_det));
            chol.extend(l);
        }
        Ok(FactorisedGmm {
            k: self.k,
            d,
            mu: self.mu.clone(),
            chol,
            log_norm,
            jitter,
        })
    }
}

/// A mixture ready for scoring: Cholesky factors and per-component log normalisers.
#[derive(Debug, Clone)]
pub struct FactorisedGmm {
    pub k: usize,
    pub d: usize,
    mu: Vec<f64>,
    chol: Vec<f64>,
    /// `log φ̂_k − ½ log|2π Σ̂_k|`.
    log_norm: Vec<f64>,
    /// Largest jitter that had to be added to a diagonal (0 when none).
    pub jitter: f64,
}

impl FactorisedGmm {
    /// Per-component log densities `log φ̂_k N(z | μ̂_k, Σ̂_k)` written into `out`.
    fn log_terms(&self, z: &[f64], out: &mut [f64], work: &mut [f64]) {
        let d = self.d;
        for c in 0..self.k {
            for a in 0..d {
                work[a] = z[a] - self.mu[c * d + a];
            }
            let m = forward_solve_norm_sq(&self.chol[c * d * d..(c + 1) * d * d], work, d);
            out[c] = self.log_norm[c] - 0.5 * m;
        }
    }

    /// Sample energy `E(z) = −log Σ_k φ̂_k N(z | μ̂_k, Σ̂_k)`: high means anomalous.
    pub fn energy(&self, z: &[f64]) -> f64 {
        let mut terms = vec![0f64; self.k];
        let mut work = vec![0f64; self.d];
        self.log_terms(z, &mut terms, &mut work);
        -log_sum_exp(&terms)
    }

    /// Energy of every row of a row-major `n × d` block of z (buffers reused across rows).
    pub fn energies(&self, z: &[f64]) -> Vec<f64> {
        // Rows in blocks over the current rayon pool, each block with its own buffers.
        const BLOCK: usize = 4096;
        z.par_chunks(BLOCK * self.d.max(1))
            .flat_map_iter(|block| {
                let mut terms = vec![0f64; self.k];
                let mut work = vec![0f64; self.d];
                block
                    .chunks(self.d)
                    .map(|row| {
                        self.log_terms(row, &mut terms, &mut work);
                        -log_sum_exp(&terms)
                    })
                    .collect::<Vec<f64>>()
            })
            .collect()
    }
}

impl FactorisedGmm {
    /// The energy of one row `z` and its gradient `∂E/∂z = Σ_k r_k Σ̂_k⁻¹ (z − μ̂_k)` with
    /// the mixture held fixed (r_k the posterior): how a marked row is pushed up or held down.
    pub fn energy_gradient(&self, z: &[f64]) -> (f64, Vec<f64>) {
        let (k, d) = (self.k, self.d);
        let mut terms = vec![0f64; k];
        let mut work = vec![0f64; d];
        self.log_terms(z, &mut terms, &mut work);
        let lse = log_sum_exp(&terms);
        let mut grad = vec![0f64; d];
        for c in 0..k {
            let r = (terms[c] - lse).exp();
            let l = &self.chol[c * d * d..(c + 1) * d * d];
            for a in 0..d {
                work[a] = z[a] - self.mu[c * d + a];
            }
            forward_solve_norm_sq(l, &mut work, d);
            back_solve(l, &mut work, d);
            for a in 0..d {
                grad[a] += r * work[a];
            }
        }
        (-lse, grad)
    }
}

/// Solves `Lᵀ u = v` in place (`L` lower triangular).
fn back_solve(l: &[f64], v: &mut [f64], d: usize) {
    for i in (0..d).rev() {
        let mut s = v[i];
        for p in i + 1..d {
            s -= l[p * d + i] * v[p];
        }
        v[i] = s / l[i * d + i];
    }
}

/// Value and gradients of the mixture part of the DAGMM objective over one batch.
#[derive(Debug, Clone)]
pub struct MixtureObjective {
    /// Mean sample energy over the batch (the paper's energy term before λ1).
    pub energy: f64,
    /// Covariance penalty P (before λ2).
    pub penalty: f64,
    /// φ̂ of the batch.
    pub phi: Vec<f64>,
    /// ∂(λ1·energy + λ2·penalty)/∂z, `n × d`.
    pub grad_z: Vec<f64>,
    /// ∂(λ1·energy + λ2·penalty)/∂γ̂, `n × k`.
    pub grad_gamma: Vec<f64>,
    /// Jitter added to some diagonal for Cholesky to succeed (0 when none).
    pub jitter: f64,
}

/// Computes `λ1·mean_i E(z_i) + λ2·P(Σ̂)` for a batch with GMM parameters estimated from the
/// same batch, and its exact gradients with respect to every `z_i` and `γ̂_i`.
///
/// Derivation (w = λ1/N, δ_ik = z_i − μ̂_k, r_ik the GMM posterior, s_k = Σ_i γ̂_ik):
/// direct `∂/∂z_i = w Σ_k r_ik Σ̂_k⁻¹ δ_ik`; `∂/∂φ̂_k = −w Σ_i r_ik / φ̂_k`;
/// `∂/∂μ̂_k = −w Σ̂_k⁻¹ Σ_i r_ik δ_ik`;
/// `∂/∂Σ̂_k = −½w(Σ̂⁻¹ (Σ_i r_ik δδᵀ) Σ̂⁻¹ − R_k Σ̂⁻¹) − λ2 diag(1/Σ̂_jj²)`;
/// then through `φ̂ = s/N`, `μ̂ = Σγz/s`, `Σ̂ = Σγδδᵀ/s` (whose derivative in μ̂ vanishes).
pub fn mixture_objective(
    z: &[f64],
    gamma: &[f64],
    d: usize,
    k: usize,
    lambda_energy: f64,
    lambda_cov: f64,
    eps: f64,
) -> Result<MixtureObjective, String> {
    let n = z.len() / d;
    let w = lambda_energy / n as f64;
    let params = GmmParams::fit(z, gamma, d, k, eps);
    let factors = params.factorise()?;
    let dd = d * d;
    let inv: Vec<f64> = (0..k)
        .flat_map(|c| inverse_from_cholesky(&factors.chol[c * dd..(c + 1) * dd], d))
        .collect();
    let mass: Vec<f64> = params.phi.iter().map(|p| p * n as f64).collect();

    // Forward: energies and posteriors.
    let mut resp = vec![0f64; n * k];
    let mut energy_sum = 0f64;
    let mut work = vec![0f64; d];
    for i in 0..n {
        let terms = &mut resp[i * k..(i + 1) * k];
        factors.log_terms(&z[i * d..(i + 1) * d], terms, &mut work);
        let lse = log_sum_exp(terms);
        energy_sum -= lse;
        for t in terms.iter_mut() {
            *t = (*t - lse).exp();
        }
    }

    // Gradients with respect to the mixture parameters.
    let mut grad_z = vec![0f64; n * d];
    let mut g_phi = vec![0f64; k];
    let mut g_mu = vec![0f64; k * d];
    let mut g_cov = vec![0f64; k * dd];
    let mut delta = vec![0f64; d];
    let mut sinv_delta = vec![0f64; d];
    for c in 0..k {
        let sinv = &inv[c * dd..(c + 1) * dd];
        let mut r_total = 0f64;
        let mut r_delta = vec![0f64; d];
        let mut scatter = vec![0f64; dd];
        for i in 0..n {
            let r = resp[i * k + c];
            r_total += r;
            for a in 0..d {
                delta[a] = z[i * d + a] - params.mu[c * d + a];
            }
            mat_vec(sinv, &delta, &mut sinv_delta, d);
            for a in 0..d {
                grad_z[i * d + a] += w * r * sinv_delta[a];
                r_delta[a] += r * delta[a];
                for b in 0..d {
                    scatter[a * d + b] += r * delta[a] * delta[b];
                }
            }
        }
        g_phi[c] = -w * r_total / params.phi[c].max(1e-300);
        let mut tmp = vec![0f64; d];
        mat_vec(sinv, &r_delta, &mut tmp, d);
        for a in 0..d {
            g_mu[c * d + a] = -w * tmp[a];
        }
        let middle = mat_mul(&mat_mul(sinv, &scatter, d), sinv, d);
        let gc = &mut g_cov[c * dd..(c + 1) * dd];
        for a in 0..dd {
            gc[a] = -0.5 * w * (middle[a] - r_total * sinv[a]);
        }
        let cov = &params.cov[c * dd..(c + 1) * dd];
        for j in 0..d {
            gc[j * d + j] -= lambda_cov / (cov[j * d + j] * cov[j * d + j]);
        }
    }

    // Back through φ̂, μ̂, Σ̂ to γ̂ and z.
    let mut grad_gamma = vec![0f64; n * k];
    let mut gcov_delta = vec![0f64; d];
    for c in 0..k {
        let s = mass[c] + MASS_FLOOR;
        let gc = &g_cov[c * dd..(c + 1) * dd];
        let cov = &params.cov[c * dd..(c + 1) * dd];
        // ⟨G_Σ, Σ̂ − εI⟩: the scatter part of Σ̂ only.
        let mut gc_dot_cov = 0f64;
        for a in 0..d {
            for b in 0..d {
                let scatter_part = cov[a * d + b] - if a == b { eps } else { 0.0 };
                gc_dot_cov += gc[a * d + b] * scatter_part;
            }
        }
        for i in 0..n {
            let g = gamma[i * k + c];
            for a in 0..d {
                delta[a] = z[i * d + a] - params.mu[c * d + a];
            }
            mat_vec(gc, &delta, &mut gcov_delta, d);
            let mut quad = 0f64;
            let mut mu_dot = 0f64;
            for a in 0..d {
                quad += delta[a] * gcov_delta[a];
                mu_dot += g_mu[c * d + a] * delta[a];
                grad_z[i * d + a] += g / s * (g_mu[c * d + a] + 2.0 * gcov_delta[a]);
            }
            grad_gamma[i * k + c] = g_phi[c] / n as f64 + (mu_dot + quad - gc_dot_cov) / s;
        }
    }

    Ok(MixtureObjective {
        energy: energy_sum / n as f64,
        penalty: params.penalty(),
        phi: params.phi,
        grad_z,
        grad_gamma,
        jitter: factors.jitter,
    })
}

/// `log Σ exp(x)` without overflow; `-inf` when every term is `-inf`.
pub fn log_sum_exp(x: &[f64]) -> f64 {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + x.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Lower Cholesky factor of a symmetric `d × d` matrix, or `None` if not positive definite.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut sum = a[i * d + j];
            for p in 0..j {
                sum -= l[i * d + p] * l[j * d + p];
            }
            if i == j {
                if !(sum > 0.0 && sum.is_finite()) {
                    return None;
                }
                l[i * d + i] = sum.sqrt();
            } else {
                l[i * d + j] = sum / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// Cholesky, retrying with a growing diagonal jitter; returns the factor and the jitter used.
fn cholesky_with_jitter(a: &[f64], d: usize) -> Option<(Vec<f64>, f64)> {
    if a.iter().any(|v| !v.is_finite()) {
        return None;
    }
    if let Some(l) = cholesky(a, d) {
        return Some((l, 0.0));
    }
    let scale = ((0..d).map(|j| a[j * d + j].abs()).sum::<f64>() / d as f64).max(1e-12);
    let mut jitter = 1e-9 * scale;
    let mut shifted = a.to_vec();
    for _ in 0..JITTER_TRIES {
        for j in 0..d {
            shifted[j * d + j] = a[j * d + j] + jitter;
        }
        if let Some(l) = cholesky(&shifted, d) {
            return Some((l, jitter));
        }
        jitter *= 10.0;
    }
    None
}

/// `‖L⁻¹ v‖²` by forward substitution (overwrites `v`): the Mahalanobis term.
fn forward_solve_norm_sq(l: &[f64], v: &mut [f64], d: usize) -> f64 {
    let mut norm = 0f64;
    for i in 0..d {
        let mut s = v[i];
        for p in 0..i {
            s -= l[i * d + p] * v[p];
        }
        v[i] = s / l[i * d + i];
        norm += v[i] * v[i];
    }
    norm
}

/// `(L Lᵀ)⁻¹` from the lower factor `L`.
fn inverse_from_cholesky(l: &[f64], d: usize) -> Vec<f64> {
    let mut inv = vec![0f64; d * d];
    let mut col = vec![0f64; d];
    for j in 0..d {
        col.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = if i == j { 1.0 } else { 0.0 });
        for i in 0..d {
            let mut s = col[i];
            for p in 0..i {
                s -= l[i * d + p] * col[p];
            }
            col[i] = s / l[i * d + i];
        }
        for i in (0..d).rev() {
            let mut s = col[i];
            for p in i + 1..d {
                s -= l[p * d + i] * col[p];
            }
            col[i] = s / l[i * d + i];
        }
        for i in 0..d {
            inv[i * d + j] = col[i];
        }
    }
    inv
}

fn mat_vec(m: &[f64], v: &[f64], out: &mut [f64], d: usize) {
    for a in 0..d {
        out[a] = (0..d).map(|b| m[a * d + b] * v[b]).sum();
    }
}

fn mat_mul(x: &[f64], y: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0f64; d * d];
    for a in 0..d {
        for p in 0..d {
            let xa = x[a * d + p];
            for b in 0..d {
                out[a * d + b] += xa * y[p * d + b];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn random_batch(n: usize, d: usize, k: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let z: Vec<f64> = (0..n * d).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut gamma = Vec::with_capacity(n * k);
        for _ in 0..n {
            let logits: Vec<f64> = (0..k).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let lse = log_sum_exp(&logits);
            gamma.extend(logits.iter().map(|l| (l - lse).exp()));
        }
        (z, gamma)
    }

    fn objective(z: &[f64], gamma: &[f64], d: usize, k: usize) -> f64 {
        let o = mixture_objective(z, gamma, d, k, 0.1, 0.005, 1e-6).unwrap();
        0.1 * o.energy + 0.005 * o.penalty
    }

    fn max_relative_error(analytic: &[f64], numeric: &[f64]) -> f64 {
        let scale = numeric
            .iter()
            .map(|v| v.abs())
            .fold(0.0, f64::max)
            .max(1e-8);
        analytic
            .iter()
            .zip(numeric)
            .map(|(a, n)| (a - n).abs() / scale)
            .fold(0.0, f64::max)
    }

    #[test]
    fn gradients_match_central_finite_differences() {
        for (n, d, k, seed) in [(12, 3, 2, 1), (20, 4, 3, 7), (9, 3, 4, 42)] {
            let (mut z, mut gamma) = random_batch(n, d, k, seed);
            let o = mixture_objective(&z, &gamma, d, k, 0.1, 0.005, 1e-6).unwrap();
            let h = 1e-6;
            let mut numeric_z = vec![0.0; z.len()];
            for i in 0..z.len() {
                let keep = z[i];
                z[i] = keep + h;
                let up = objective(&z, &gamma, d, k);
                z[i] = keep - h;
                let down = objective(&z, &gamma, d, k);
                z[i] = keep;
                numeric_z[i] = (up - down) / (2.0 * h);
            }
            let mut numeric_g = vec![0.0; gamma.len()];
            for i in 0..gamma.len() {
                let keep = gamma[i];
                gamma[i] = keep + h;
                let up = objective(&z, &gamma, d, k);
                gamma[i] = keep - h;
                let down = objective(&z, &gamma, d, k);
                gamma[i] = keep;
                numeric_g[i] = (up - down) / (2.0 * h);
            }
            let ez = max_relative_error(&o.grad_z, &numeric_z);
            let eg = max_relative_error(&o.grad_gamma, &numeric_g);
            assert!(ez < 1e-4, "z gradient off by {ez} (n={n} d={d} k={k})");
            assert!(eg < 1e-4, "gamma gradient off by {eg} (n={n} d={d} k={k})");
        }
    }

    #[test]
    fn energy_gradient_with_the_mixture_fixed_matches_finite_differences() {
        let (d, k) = (3, 2);
        let (z, gamma) = random_batch(40, d, k, 7);
        let factors = GmmParams::fit(&z, &gamma, d, k, 1e-6).factorise().unwrap();
        let row = [0.3, -0.2, 0.5];
        let (energy, grad) = factors.energy_gradient(&row);
        assert!((energy - factors.energy(&row)).abs() < 1e-12);
        let h = 1e-6;
        for a in 0..d {
            let (mut up, mut down) = (row, row);
            up[a] += h;
            down[a] -= h;
            let numeric = (factors.energy(&up) - factors.energy(&down)) / (2.0 * h);
            assert!(
                (numeric - grad[a]).abs() <= 1e-5 * numeric.abs().max(1.0),
                "dim {a}: analytic {} numeric {numeric}",
                grad[a]
            );
        }
    }

    #[test]
    fn energy_matches_a_direct_gaussian_density() {
        // One component, diagonal covariance: E = ½ Σ (z−μ)²/σ² + ½ log|2πΣ|.
        let params = GmmParams {
            k: 1,
            d: 2,
            phi: vec![1.0],
            mu: vec![1.0, -1.0],
            cov: vec![4.0, 0.0, 0.0, 0.25],
        };
        let f = params.factorise().unwrap();
        let z = [3.0, -0.5];
        let expected =
            0.5 * (4.0 / 4.0 + 0.25 / 0.25) + 0.5 * (2.0 * LN_2PI + (4.0f64 * 0.25).ln());
        assert!((f.energy(&z) - expected).abs() < 1e-12);
        assert_eq!(f.jitter, 0.0);
    }

    #[test]
    fn singular_covariance_gets_jitter_instead_of_failing() {
        // All samples identical: the scatter is zero, only eps = 0 on the diagonal.
        let z = vec![0.5; 10 * 3];
        let gamma = vec![0.5; 10 * 2];
        let o = mixture_objective(&z, &gamma, 3, 2, 0.1, 0.005, 0.0).unwrap();
        assert!(o.jitter > 0.0);
        assert!(o.energy.is_finite());
    }

    #[test]
    fn fitted_weights_sum_to_one_and_means_are_weighted_averages() {
        let z = vec![0.0, 0.0, 2.0, 2.0];
        let gamma = vec![1.0, 0.0, 0.0, 1.0];
        let p = GmmParams::fit(&z, &gamma, 2, 2, 0.0);
        assert_eq!(p.phi, vec![0.5, 0.5]);
        assert!((p.mu[2] - 2.0).abs() < 1e-9 && p.mu[0].abs() < 1e-9);
    }
}

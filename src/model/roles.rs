//! Row roles: what training knows of each row, and how DAGMM's objective weighs it.
//!
//! A row is *unknown* (the default), *marked anomaly* or *marked normal* by the analyst;
//! within a step, an unknown row may also be *suspected* by its own energy (no label):
//! the highest-energy share of the batch's unknown rows, once training has warmed up.
//! - Suspected rows leave both the mixture fit and the loss (trimming: anomalies in the
//!   training rows are not pulled into dense regions of z).
//! - Marked anomalies leave the fit and the reconstruction loss, and are **pushed**: when
//!   a marked row's energy is below a high quantile of the kept unknown rows' energies (plus
//!   a margin of one interquartile range), its energy gradient is followed upwards with the
//!   weight of [`MARK_WEIGHT`] rows; rows that look like it rise with it. (AAD's hinge around
//!   the τ-quantile, in energy units: DAGMM's energy can be negative, so no inverse term.)
//! - Marked normals are never trimmed and are **held** below that quantile by the same
//!   hinge the other way.
//!
//! EGBAD uses the roles it can: its batches leave marked anomalies out.

use super::gmm::{self, GmmParams, MixtureObjective};

/// What training knows of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowRole {
    #[default]
    Unknown,
    MarkedAnomaly,
    MarkedNormal,
}

/// The roles of one batch's rows and the share of its unknown rows to suspect.
#[derive(Debug, Clone, Copy)]
pub struct BatchRoles<'a> {
    pub roles: &'a [RowRole],
    /// Share of the unknown rows left out as suspected (0 during warm-up).
    pub trim: f64,
}

impl BatchRoles<'_> {
    /// Every row unknown, nothing trimmed: the paper's objective.
    pub fn plain() -> BatchRoles<'static> {
        BatchRoles {
            roles: &[],
            trim: 0.0,
        }
    }

    /// The role of row `i` (unknown past the end: [`BatchRoles::plain`] lists none).
    pub fn role(&self, i: usize) -> RowRole {
        self.roles.get(i).copied().unwrap_or_default()
    }
}

/// How strongly a marked row is pushed (or held): its energy gradient counts as this many
/// unknown rows' in the energy term.
pub const MARK_WEIGHT: f64 = 200.0;
/// The quantile of the kept unknown rows' energies marked anomalies are pushed above (and
/// marked normals held below): the top 5 %, where an analyst reads.
pub const PUSH_QUANTILE: f64 = 0.95;

/// The mixture objective of a batch under its roles, with what each row contributes.
#[derive(Debug, Clone)]
pub struct RoleObjective {
    /// Value and gradients over the whole batch (zero for rows outside the fit).
    pub mixture: MixtureObjective,
    /// Rows whose reconstruction error counts in the loss (the fitted rows).
    pub in_loss: Vec<bool>,
    /// Unknown rows suspected by their energy this step.
    pub suspected: usize,
}

/// [`gmm::mixture_objective`] over the batch rows its roles keep, plus the push and hold
/// terms of the marked rows. `z` is `n × d`, `gamma` `n × k`.
#[allow(clippy::too_many_arguments)]
pub fn role_objective(
    z: &[f64],
    gamma: &[f64],
    d: usize,
    k: usize,
    roles: BatchRoles<'_>,
    lambda_energy: f64,
    lambda_cov: f64,
    eps: f64,
) -> Result<RoleObjective, String> {
    let n = z.len() / d;
    let mut keep: Vec<bool> = (0..n)
        .map(|i| roles.role(i) != RowRole::MarkedAnomaly)
        .collect();
    let suspected = if roles.trim > 0.0 {
        suspect(z, gamma, d, k, &roles, &mut keep, eps)?
    } else {
        0
    };
    let kept: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
    if kept.len() < 2 {
        return Err("fewer than two rows left in the batch's fit".into());
    }
    let gather = |all: &[f64], width: usize| -> Vec<f64> {
        kept.iter()
            .flat_map(|&i| all[i * width..(i + 1) * width].iter().copied())
            .collect()
    };
    let (kz, kg) = (gather(z, d), gather(gamma, k));
    let part = gmm::mixture_objective(&kz, &kg, d, k, lambda_energy, lambda_cov, eps)?;
    let mut mixture = MixtureObjective {
        grad_z: vec![0f64; n * d],
        grad_gamma: vec![0f64; n * k],
        ..part.clone()
    };
    for (j, &i) in kept.iter().enumerate() {
        mixture.grad_z[i * d..(i + 1) * d].copy_from_slice(&part.grad_z[j * d..(j + 1) * d]);
        mixture.grad_gamma[i * k..(i + 1) * k]
            .copy_from_slice(&part.grad_gamma[j * k..(j + 1) * k]);
    }
    let marked = (0..n).any(|i| roles.role(i) != RowRole::Unknown);
    if marked {
        push_and_hold(
            z,
            d,
            &roles,
            &kept,
            &kz,
            &kg,
            k,
            eps,
            lambda_energy,
            &mut mixture,
        )?;
    }
    Ok(RoleObjective {
        mixture,
        in_loss: keep,
        suspected,
    })
}

/// Leaves the highest-energy `trim` share of the unknown rows out of `keep` (energies
/// under the mixture fitted on every kept row); returns how many.
fn suspect(
    z: &[f64],
    gamma: &[f64],
    d: usize,
    k: usize,
    roles: &BatchRoles<'_>,
    keep: &mut [bool],
    eps: f64,
) -> Result<usize, String> {
    let n = keep.len();
    let idx: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
    let fz: Vec<f64> = idx
        .iter()
        .flat_map(|&i| z[i * d..(i + 1) * d].iter().copied())
        .collect();
    let fg: Vec<f64> = idx
        .iter()
        .flat_map(|&i| gamma[i * k..(i + 1) * k].iter().copied())
        .collect();
    let factors = GmmParams::fit(&fz, &fg, d, k, eps).factorise()?;
    let mut unknown: Vec<(f64, usize)> = (0..n)
        .filter(|&i| keep[i] && roles.role(i) == RowRole::Unknown)
        .map(|i| (factors.energy(&z[i * d..(i + 1) * d]), i))
        .collect();
    let count = (roles.trim.clamp(0.0, 0.5) * unknown.len() as f64).floor() as usize;
    unknown.sort_by(|a, b| b.0.total_cmp(&a.0));
    for &(_, i) in unknown.iter().take(count) {
        keep[i] = false;
    }
    Ok(count)
}

/// Adds the push (marked anomalies) and hold (marked normals) gradients to `mixture`.
#[allow(clippy::too_many_arguments)]
fn push_and_hold(
    z: &[f64],
    d: usize,
    roles: &BatchRoles<'_>,
    kept: &[usize],
    kz: &[f64],
    kg: &[f64],
    k: usize,
    eps: f64,
    lambda_energy: f64,
    mixture: &mut MixtureObjective,
) -> Result<(), String> {
    let factors = GmmParams::fit(kz, kg, d, k, eps).factorise()?;
    let mut reference: Vec<f64> = kept
        .iter()
        .filter(|&&i| roles.role(i) == RowRole::Unknown)
        .map(|&i| factors.energy(&z[i * d..(i + 1) * d]))
        .collect();
    if reference.len() < 4 {
        return Ok(());
    }
    reference.sort_by(f64::total_cmp);
    let at = |q: f64| reference[((reference.len() - 1) as f64 * q).round() as usize];
    let spread = (at(0.75) - at(0.25)).max(1e-9);
    let threshold = at(PUSH_QUANTILE);
    let weight = lambda_energy.max(1e-3) * MARK_WEIGHT / kept.len() as f64;
    for i in 0..z.len() / d {
        let row = &z[i * d..(i + 1) * d];
        let sign = match roles.role(i) {
            RowRole::MarkedAnomaly => {
                if factors.energy(row) >= threshold + spread {
                    continue;
                }
                -1.0
            }
            RowRole::MarkedNormal => {
                if factors.energy(row) <= threshold {
                    continue;
                }
                1.0
            }
            RowRole::Unknown => continue,
        };
        let (_, grad) = factors.energy_gradient(row);
        for (g, e) in mixture.grad_z[i * d..(i + 1) * d].iter_mut().zip(grad) {
            *g += sign * weight * e;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch: `n` rows near the origin in 2-d, and memberships split over two components.
    fn batch(n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut z = Vec::new();
        let mut g = Vec::new();
        for i in 0..n {
            let t = i as f64 / n as f64;
            z.extend([(t * 7.3).sin() * 0.5, (t * 3.1).cos() * 0.5]);
            g.extend([0.3 + 0.4 * t, 0.7 - 0.4 * t]);
        }
        (z, g)
    }

    /// `z` and `g` (two columns each) without row `skip`.
    fn without_row(z: &[f64], g: &[f64], skip: usize) -> (Vec<f64>, Vec<f64>) {
        let keep = |all: &[f64]| -> Vec<f64> {
            all.chunks(2)
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .flat_map(|(_, r)| r.to_vec())
                .collect()
        };
        (keep(z), keep(g))
    }

    #[test]
    fn suspected_rows_leave_the_fit_and_the_loss_and_marked_normals_are_never_trimmed() {
        let (mut z, g) = batch(40);
        // Rows 3 and 5 are far out: the two highest energies.
        z[6..8].copy_from_slice(&[4.0, 4.0]);
        z[10..12].copy_from_slice(&[-4.0, 3.5]);
        let mut roles = vec![RowRole::Unknown; 40];
        roles[5] = RowRole::MarkedNormal;
        let batch = BatchRoles {
            roles: &roles,
            trim: 0.05,
        };
        let out = role_objective(&z, &g, 2, 2, batch, 0.1, 0.005, 1e-6).unwrap();
        // 5 % of 39 unknown rows: one suspected, the far unknown row 3; row 5 (marked
        // normal) is as far out and stays.
        assert_eq!(out.suspected, 1);
        assert!(!out.in_loss[3] && out.in_loss[5]);
        assert!(
            out.mixture.grad_z[6..8].iter().all(|&v| v == 0.0),
            "no fit gradient"
        );
        assert!(out.mixture.grad_gamma[6..8].iter().all(|&v| v == 0.0));
        // The fit is the plain objective over the other rows.
        let (kz, kg) = without_row(&z, &g, 3);
        let plain = gmm::mixture_objective(&kz, &kg, 2, 2, 0.1, 0.005, 1e-6).unwrap();
        assert!((plain.energy - out.mixture.energy).abs() < 1e-12);
        assert_eq!(plain.phi, out.mixture.phi);
    }

    #[test]
    fn a_marked_anomaly_is_pushed_up_its_energy_and_leaves_the_fit() {
        let (z, g) = batch(40);
        let mut roles = vec![RowRole::Unknown; 40];
        roles[7] = RowRole::MarkedAnomaly;
        let plain = BatchRoles::plain();
        let marked = BatchRoles {
            roles: &roles,
            trim: 0.0,
        };
        let base = role_objective(&z, &g, 2, 2, plain, 0.1, 0.005, 1e-6).unwrap();
        let out = role_objective(&z, &g, 2, 2, marked, 0.1, 0.005, 1e-6).unwrap();
        assert!(!out.in_loss[7] && base.in_loss[7]);
        assert!(out.mixture.grad_gamma[14..16].iter().all(|&v| v == 0.0));
        // Descending the objective moves row 7 along +∂E/∂z: its energy rises.
        let (kz, kg) = without_row(&z, &g, 7);
        let factors = GmmParams::fit(&kz, &kg, 2, 2, 1e-6).factorise().unwrap();
        let row = [z[14], z[15]];
        let step = 1e-3;
        let moved = [
            row[0] - step * out.mixture.grad_z[14],
            row[1] - step * out.mixture.grad_z[15],
        ];
        assert!(factors.energy(&moved) > factors.energy(&row));
    }
}

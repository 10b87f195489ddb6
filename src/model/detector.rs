//! The detector seam: everything above the model layer (trainer, worker, checkpoints,
//! scoring, ensembles, eval, CLI, panes) sees a detector through the types here and never
//! names DAGMM or EGBAD's internals.
//!
//! - [`DetectorKind`]: which detector, with what the UI needs to present it (loss names,
//!   the title of its per-epoch auxiliary series, what its score means);
//! - [`DetectorConfig`]: its architecture, serde-tagged by kind;
//! - [`Network`]: the networks in training with their optimisers; one
//!   [`Network::step`] per batch, then [`Network::fit`] after training;
//! - [`Detector`]: a fitted detector, ready to score rows and explain one.
//!
//! A third detector is one more variant in each of these enums.

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use super::config::DagmmConfig;
use super::dagmm::{Dagmm, Inference};
use super::dense::{Adam, Dev, ParamMut, Params};
use super::egbad::{Egbad, EgbadConfig, EgbadScore, ScoreParts, TailChoice};
use super::ensemble::FittedDagmm;
use super::gmm::GmmParams;
use super::parallel::StepThreads;
use super::roles::{BatchRoles, RowRole};
use crate::data::Matrix;

/// EGBAD's game counts as lost by G and E when D's epoch loss falls below this (it starts
/// near 2·ln 2 ≈ 1.39; at equilibrium it stays there)…
const DIVERGED_D_LOSS: f64 = 0.1;
/// … while D is right on more than this share of both real and generated pairs. (On
/// KDDCUP, D sat at 0.06–0.09 with 98–99.9 % right from the second epoch on, and E and G
/// learnt nothing more.)
const DIVERGED_ACCURACY: f64 = 0.97;

/// The detectors this build knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// Deep Autoencoding Gaussian Mixture Model (Zong et al. 2018): density of a latent code.
    #[default]
    Dagmm,
    /// Efficient GAN-Based Anomaly Detection (Zenati et al. 2018): adversarial reconstruction.
    Egbad,
}

impl DetectorKind {
    /// Every detector, in the order side-by-side views list them.
    pub const ALL: [DetectorKind; 2] = [DetectorKind::Dagmm, DetectorKind::Egbad];

    /// Name as typed on the command line and in file and column names ("dagmm").
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Dagmm => "dagmm",
            DetectorKind::Egbad => "egbad",
        }
    }

    /// Name as printed ("DAGMM").
    pub fn title(self) -> &'static str {
        match self {
            DetectorKind::Dagmm => "DAGMM",
            DetectorKind::Egbad => "EGBAD",
        }
    }

    /// Names of the loss components a step reports, in order.
    pub fn loss_names(self) -> &'static [&'static str] {
        match self {
            DetectorKind::Dagmm => &["recon", "energy", "cov-pen", "total"],
            DetectorKind::Egbad => &["D loss", "G/E loss", "D real", "D fake"],
        }
    }

    /// Title of the per-epoch auxiliary series (`None`: the detector has none, and its
    /// pane shows the score distribution instead).
    pub fn aux_title(self) -> Option<&'static str> {
        match self {
            DetectorKind::Dagmm => Some("Mixture weights φ"),
            DetectorKind::Egbad => None,
        }
    }

    /// What a raw score is, for docs, panes and logs.
    pub fn score_meaning(self) -> &'static str {
        match self {
            DetectorKind::Dagmm => "sample energy",
            DetectorKind::Egbad => "α·‖x − G(E(x))‖₁ + (1 − α)·L_D",
        }
    }

    /// What the per-feature explanation of a row measures.
    pub fn feature_error_title(self) -> &'static str {
        match self {
            DetectorKind::Dagmm => "reconstruction error (x − x̂)²",
            DetectorKind::Egbad => "reconstruction error |x − G(E(x))|",
        }
    }

    /// A warning about a numerical repair of size `amount` a step needed.
    pub fn describe_repair(self, amount: f64) -> String {
        match self {
            DetectorKind::Dagmm => {
                format!("a covariance needed diagonal jitter {amount:.1e} to factorise")
            }
            DetectorKind::Egbad => format!("a step needed a numerical repair of {amount:.1e}"),
        }
    }

    /// Default Adam learning rate.
    pub fn default_lr(self) -> f64 {
        match self {
            DetectorKind::Dagmm => 1e-4,
            DetectorKind::Egbad => 1e-4,
        }
    }

    /// Optimisation steps per member the default epoch count aims at. DAGMM: short on
    /// purpose (README, "Detection quality": longer training ranked worse). EGBAD: a GAN
    /// needs many more steps to learn anything.
    pub fn default_min_steps(self) -> usize {
        match self {
            DetectorKind::Dagmm => 200,
            DetectorKind::Egbad => 1000,
        }
    }

    /// Default mini-batch size.
    pub fn default_batch(self) -> usize {
        match self {
            DetectorKind::Dagmm => 1024,
            DetectorKind::Egbad => 256,
        }
    }
}

impl std::fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.title())
    }
}

/// A detector's architecture, tagged by its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "detector", rename_all = "lowercase")]
pub enum DetectorConfig {
    Dagmm(DagmmConfig),
    Egbad(EgbadConfig),
}

impl DetectorConfig {
    pub fn kind(&self) -> DetectorKind {
        match self {
            DetectorConfig::Dagmm(_) => DetectorKind::Dagmm,
            DetectorConfig::Egbad(_) => DetectorKind::Egbad,
        }
    }

    /// Encoded input width.
    pub fn input(&self) -> usize {
        match self {
            DetectorConfig::Dagmm(c) => c.input,
            DetectorConfig::Egbad(c) => c.input,
        }
    }

    /// One line naming the architecture, for status lines and logs.
    pub fn describe(&self) -> String {
        match self {
            DetectorConfig::Dagmm(c) => c.describe(),
            DetectorConfig::Egbad(c) => c.describe(),
        }
    }

    /// Checks sizes and weights make sense, so a bad flag is an error, not a panic.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            DetectorConfig::Dagmm(c) => c.validate(),
            DetectorConfig::Egbad(c) => c.validate(),
        }
    }

    /// A last partial batch smaller than this is dropped (DAGMM: its covariance estimate
    /// would be noise).
    pub fn min_batch(&self) -> usize {
        match self {
            DetectorConfig::Dagmm(c) => (4 * c.z_width()).max(16),
            DetectorConfig::Egbad(_) => 8,
        }
    }
}

/// What one applied step reports.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Loss components, named by [`DetectorKind::loss_names`].
    pub losses: Vec<f64>,
    /// The auxiliary series' values for this batch (DAGMM: φ̂; empty when none).
    pub aux: Vec<f64>,
    /// A numerical repair the step needed, worth a warning (DAGMM: covariance jitter).
    pub repair: Option<f64>,
}

/// Networks in training, with their optimisers.
// One exists per member in training: boxing the larger variant would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Network {
    /// One Adam over the three networks, trained end to end.
    Dagmm { model: Dagmm, adam: Adam },
    /// Two Adams: one for D, one for E and G together.
    Egbad {
        model: Egbad,
        discriminator: Adam,
        generator_encoder: Adam,
    },
}

impl Network {
    /// Freshly initialised networks; the same seed gives the same weights.
    pub fn new(config: &DetectorConfig, dev: &Dev, seed: u64, lr: f64) -> Self {
        match config {
            DetectorConfig::Dagmm(c) => Network::Dagmm {
                model: Dagmm::new(dev, c.clone(), seed),
                adam: Adam::new(lr),
            },
            DetectorConfig::Egbad(c) => Network::Egbad {
                model: Egbad::new(dev, c.clone(), seed),
                discriminator: Adam::new(lr),
                generator_encoder: Adam::new(lr),
            },
        }
    }

    /// The networks of a fitted detector, with fresh optimisers at `lr`: fine-tuning a
    /// trained member from its current weights (its Adam moments were not kept).
    pub fn resume(detector: &Detector, lr: f64) -> Self {
        match detector {
            Detector::Dagmm(d) => Network::Dagmm {
                model: d.model.clone(),
                adam: Adam::new(lr),
            },
            Detector::Egbad(e) => Network::Egbad {
                model: e.model.clone(),
                discriminator: Adam::new(lr),
                generator_encoder: Adam::new(lr),
            },
        }
    }

    pub fn config(&self) -> DetectorConfig {
        match self {
            Network::Dagmm { model, .. } => DetectorConfig::Dagmm(model.config.clone()),
            Network::Egbad { model, .. } => DetectorConfig::Egbad(model.config.clone()),
        }
    }

    /// One optimisation step on `batch`. `None` when the loss or a gradient was not finite
    /// (or a gradient too large for Adam, see [`Adam::update`]): the step is dropped and the
    /// weights stay as they were (EGBAD: E and G's; D's update, which E and G's half
    /// already played against, stands). No copy of the networks is made to roll back to.
    /// Both detectors split a batch over `threads` ([`StepThreads::splits`]).
    pub fn step(
        &mut self,
        dev: &Dev,
        batch: Matrix,
        roles: BatchRoles<'_>,
        threads: &StepThreads,
    ) -> Result<Option<StepReport>> {
        let report = match self {
            Network::Dagmm { model, adam } => {
                let step = if threads.splits(batch.rows) {
                    model.train_step_split(threads, batch, roles)
                } else {
                    model.train_step(dev, batch, roles)
                };
                let Ok((loss, mut grads)) = step else {
                    return Ok(None);
                };
                if !loss.total.is_finite() {
                    return Ok(None);
                }
                if !adam.update(model, &mut grads)? {
                    return Ok(None);
                }
                StepReport {
                    losses: vec![loss.reconstruction, loss.energy, loss.penalty, loss.total],
                    aux: loss.phi,
                    repair: (loss.jitter > 0.0).then_some(loss.jitter),
                }
            }
            Network::Egbad {
                model,
                discriminator,
                generator_encoder,
            } => {
                // The roles EGBAD can use: marked anomalies stay out of its game.
                let batch = without_marked_anomalies(batch, roles);
                let optimisers = (discriminator, generator_encoder);
                let Some(losses) = model.train_step(optimisers, threads, dev, &batch)? else {
                    return Ok(None);
                };
                StepReport {
                    losses: vec![
                        losses.discriminator,
                        losses.generator_encoder,
                        losses.real_accuracy,
                        losses.fake_accuracy,
                    ],
                    aux: Vec::new(),
                    repair: None,
                }
            }
        };
        Ok(Some(report))
    }

    /// `true` when the kept state is chosen by [`Network::criterion`] rather than being the
    /// last one (EGBAD: GAN training is unstable).
    pub fn selects_state(&self) -> bool {
        matches!(self, Network::Egbad { .. })
    }

    /// A label-free criterion for choosing among this network's states during training
    /// (lower is better), measured on rows held out of the batches; `None` when the
    /// detector trains stably enough that its last state is kept (DAGMM).
    /// EGBAD: the mean ‖x − G(E(x))‖₁ of the held-out rows.
    pub fn criterion(&self, dev: &Dev, held_out: &Matrix) -> Option<f64> {
        match self {
            Network::Dagmm { .. } => None,
            Network::Egbad { model, .. } => {
                let parts = model.score_parts(dev, held_out);
                let n = parts.reconstruction.len().max(1) as f64;
                Some(parts.reconstruction.iter().sum::<f64>() / n)
            }
        }
    }

    /// After a lost game (see [`Network::diverged`]): scores by the part that still carries
    /// signal. EGBAD's generator never learnt to reconstruct the rows, so its reconstruction
    /// term would rank by noise (on KDDCUP, upside down); the discriminator's term stays
    /// (α = 0, as `--preset kddcup` scores). Returns `true` when the score changed.
    pub fn score_by_discriminator(&mut self) -> bool {
        match self {
            Network::Dagmm { .. } => false,
            Network::Egbad { model, .. } => {
                let changed = model.config.alpha != 0.0;
                model.config.alpha = 0.0;
                changed
            }
        }
    }

    /// `true` when the epoch's mean losses show a diverged game (EGBAD: D wins outright, its
    /// loss near zero or its accuracy pinned at 100 % on both sides).
    pub fn diverged(&self, losses: &[f64]) -> Option<String> {
        match self {
            Network::Dagmm { .. } => None,
            Network::Egbad { .. } => {
                let (d_loss, real, fake) = (losses[0], losses[2], losses[3]);
                let won = d_loss < DIVERGED_D_LOSS
                    && real > DIVERGED_ACCURACY
                    && fake > DIVERGED_ACCURACY;
                won.then(|| {
                    format!(
                        "the discriminator's loss fell to {d_loss:.3}, right on {:.1} % of real and {:.1} % of generated pairs",
                        100.0 * real,
                        100.0 * fake
                    )
                })
            }
        }
    }

    /// The trained networks fitted over the rows of `x` that `keep` allows (all when
    /// `None`: rows an analyst marked anomalous are left out): DAGMM fits its mixture,
    /// EGBAD chooses its score ([`Egbad::choose_score`]). Returns the detector, every row's
    /// raw score and per-row detail.
    pub fn fit(&self, dev: &Dev, x: &Matrix, keep: Option<&[bool]>) -> Result<Fit, String> {
        match self {
            Network::Dagmm { model, .. } => fit_dagmm(model.clone(), dev.clone(), x, keep),
            Network::Egbad { model, .. } => Ok(fit_egbad(
                FittedEgbad {
                    model: model.clone(),
                    dev: dev.clone(),
                    choice: None,
                },
                x,
                keep,
            )),
        }
    }
}

/// `batch` without the rows its roles mark anomalous.
fn without_marked_anomalies(batch: Matrix, roles: BatchRoles<'_>) -> Matrix {
    if !roles.roles.contains(&RowRole::MarkedAnomaly) {
        return batch;
    }
    let rows: Vec<usize> = (0..batch.rows)
        .filter(|&i| roles.role(i) != RowRole::MarkedAnomaly)
        .collect();
    batch.gather(&rows)
}

/// Fits DAGMM's mixture over the kept rows of `x` and scores every row.
fn fit_dagmm(model: Dagmm, dev: Dev, x: &Matrix, keep: Option<&[bool]>) -> Result<Fit, String> {
    let (fitted, inference, raw) = FittedDagmm::fit(model, dev, x, keep)?;
    let detail = dagmm_detail(&fitted.model.config, inference);
    Ok(Fit {
        detector: Detector::Dagmm(fitted),
        raw,
        detail,
    })
}

/// A DAGMM row's detail: its memberships γ̂ and its z.
fn dagmm_detail(c: &DagmmConfig, inference: Inference) -> RowDetail {
    let mut z_names: Vec<String> = (1..=c.latent).map(|i| format!("z{i}")).collect();
    z_names.extend(["rel dist".to_string(), "cosine".to_string()]);
    RowDetail {
        groups: vec![
            DetailGroup {
                title: "Memberships γ̂".into(),
                names: (1..=c.components).map(|k| format!("k{k}")).collect(),
                values: inference.gamma,
                shares: true,
            },
            DetailGroup {
                title: "z = [z_c, rel dist, cosine]".into(),
                names: z_names,
                values: inference.z,
                shares: false,
            },
        ],
    }
}

/// Scores every row of `x` with a trained EGBAD (it fits nothing after training).
fn fit_egbad(mut fitted: FittedEgbad, x: &Matrix, keep: Option<&[bool]>) -> Fit {
    let parts = fitted.model.score_parts(&fitted.dev, x);
    if let Some(choice) = fitted.model.choose_score(&parts, keep) {
        fitted.choice = Some(choice);
    }
    let raw = fitted.model.combine(&parts);
    let detail = egbad_detail(&fitted.model.config, &parts);
    Fit {
        detector: Detector::Egbad(fitted),
        raw,
        detail,
    }
}

/// An EGBAD row's detail: the two parts of its score.
fn egbad_detail(config: &EgbadConfig, parts: &ScoreParts) -> RowDetail {
    let d_name = match config.score {
        EgbadScore::Xent => "L_D cross-entropy",
        EgbadScore::Fm => "L_D feature match",
    };
    let values = parts
        .reconstruction
        .iter()
        .zip(&parts.discriminator)
        .flat_map(|(g, d)| [*g, *d])
        .collect();
    RowDetail {
        groups: vec![DetailGroup {
            title: format!("Score parts (α = {})", config.alpha),
            names: vec!["L_G ‖x−G(E(x))‖₁".into(), d_name.into()],
            values,
            shares: false,
        }],
    }
}

impl Params for Network {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        match self {
            Network::Dagmm { model, .. } => model.visit_params(prefix, f),
            Network::Egbad { model, .. } => model.visit_params(prefix, f),
        }
    }
}

/// A trained EGBAD: nothing to fit after training, so it scores as it is.
#[derive(Clone)]
pub struct FittedEgbad {
    pub model: Egbad,
    pub dev: Dev,
    /// Why the member scores by L_D alone, when its fit chose so ([`Egbad::choose_score`]).
    pub choice: Option<TailChoice>,
}

/// A fitted detector: ready to score rows and explain one.
// One exists per ensemble member: boxing the larger variant would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Detector {
    Dagmm(FittedDagmm),
    Egbad(FittedEgbad),
}

/// A detector fitted over some rows, with what the fit computed for every row.
pub struct Fit {
    pub detector: Detector,
    /// Raw score of every row.
    pub raw: Vec<f64>,
    /// Per-row quantities the inspect view shows.
    pub detail: RowDetail,
}

/// Per-row quantities behind a score, as plain data for the inspect view.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowDetail {
    pub groups: Vec<DetailGroup>,
}

/// One group of per-row values with their names.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailGroup {
    pub title: String,
    pub names: Vec<String>,
    /// `rows × names.len()`, row-major.
    pub values: Vec<f64>,
    /// Values are shares in [0, 1], drawn as bars.
    pub shares: bool,
}

impl DetailGroup {
    /// The values of `row`.
    pub fn of(&self, row: usize) -> &[f64] {
        let w = self.names.len();
        self.values.get(row * w..(row + 1) * w).unwrap_or(&[])
    }
}

/// What a checkpoint records of a fitted detector besides its weights, tagged by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "detector", rename_all = "lowercase")]
pub enum FittedMeta {
    /// Architecture and the mixture fitted over the training rows.
    Dagmm { model: DagmmConfig, gmm: GmmParams },
    /// Architecture only.
    Egbad { model: EgbadConfig },
}

impl FittedMeta {
    pub fn kind(&self) -> DetectorKind {
        match self {
            FittedMeta::Dagmm { .. } => DetectorKind::Dagmm,
            FittedMeta::Egbad { .. } => DetectorKind::Egbad,
        }
    }

    pub fn config(&self) -> DetectorConfig {
        match self {
            FittedMeta::Dagmm { model, .. } => DetectorConfig::Dagmm(model.clone()),
            FittedMeta::Egbad { model } => DetectorConfig::Egbad(model.clone()),
        }
    }
}

impl Detector {
    pub fn kind(&self) -> DetectorKind {
        match self {
            Detector::Dagmm(_) => DetectorKind::Dagmm,
            Detector::Egbad(_) => DetectorKind::Egbad,
        }
    }

    pub fn config(&self) -> DetectorConfig {
        match self {
            Detector::Dagmm(d) => DetectorConfig::Dagmm(d.model.config.clone()),
            Detector::Egbad(d) => DetectorConfig::Egbad(d.model.config.clone()),
        }
    }

    /// Raw anomaly score of every row of `x` (high = anomalous).
    pub fn raw_scores(&self, x: &Matrix) -> Vec<f64> {
        match self {
            Detector::Dagmm(d) => d.energies(x),
            Detector::Egbad(d) => d.model.combine(&d.model.score_parts(&d.dev, x)),
        }
    }

    /// Every row's detail for the inspect view (inference only: nothing is refitted).
    pub fn detail(&self, x: &Matrix) -> RowDetail {
        match self {
            Detector::Dagmm(d) => dagmm_detail(&d.model.config, d.model.infer(&d.dev, x)),
            Detector::Egbad(d) => egbad_detail(&d.model.config, &d.model.score_parts(&d.dev, x)),
        }
    }

    /// Whether this member scores by L_D alone (EGBAD with α = 0: a lost game, its fit's
    /// choice or `--preset kddcup`), which the status line counts.
    pub fn scores_by_discriminator(&self) -> bool {
        matches!(self, Detector::Egbad(d) if d.model.config.alpha == 0.0)
    }

    /// Why this member's score is not the one its configuration names (EGBAD: L_D alone,
    /// chosen at its fit), for the log; `None` when it is.
    pub fn score_note(&self) -> Option<String> {
        match self {
            Detector::Dagmm(_) => None,
            Detector::Egbad(d) => d.choice.map(|c| c.to_string()),
        }
    }

    /// Refits what the detector fits after training over the rows of `x` that `keep`
    /// allows (DAGMM: the mixture; EGBAD: the choice of score, [`Egbad::choose_score`]) and
    /// scores every row.
    pub fn refit(&self, x: &Matrix, keep: Option<&[bool]>) -> Result<Fit, String> {
        match self {
            Detector::Dagmm(d) => fit_dagmm(d.model.clone(), d.dev.clone(), x, keep),
            Detector::Egbad(d) => Ok(fit_egbad(d.clone(), x, keep)),
        }
    }

    /// The per-feature error of one encoded row (DAGMM: (x − x̂)²; EGBAD: |x − G(E(x))|),
    /// which the inspect view sorts largest first.
    pub fn feature_errors(&self, row: &[f32]) -> Vec<f32> {
        match self {
            Detector::Dagmm(d) => {
                let x_hat = d.model.reconstruct(&d.dev, row);
                row.iter()
                    .zip(&x_hat)
                    .map(|(a, b)| (a - b) * (a - b))
                    .collect()
            }
            Detector::Egbad(d) => {
                let rebuilt = d.model.reconstruct(&d.dev, row);
                row.iter()
                    .zip(&rebuilt)
                    .map(|(a, b)| (a - b).abs())
                    .collect()
            }
        }
    }

    /// One line naming the architecture, for status lines and logs.
    pub fn describe(&self) -> String {
        self.config().describe()
    }

    /// What a checkpoint records besides the weights.
    pub fn meta(&self) -> FittedMeta {
        match self {
            Detector::Dagmm(d) => FittedMeta::Dagmm {
                model: d.model.config.clone(),
                gmm: d.gmm.clone(),
            },
            Detector::Egbad(d) => FittedMeta::Egbad {
                model: d.model.config.clone(),
            },
        }
    }

    /// A detector with freshly initialised weights (the caller loads the saved ones) and
    /// the fitted state `meta` records; an error when that state is unusable.
    pub fn from_meta(meta: &FittedMeta, seed: u64) -> Result<Self> {
        let config = meta.config();
        config.validate().map_err(|e| anyhow!(e))?;
        let dev = Dev::seed_from_u64(seed);
        Ok(match meta {
            FittedMeta::Dagmm { model, gmm } => Detector::Dagmm(
                FittedDagmm::new(Dagmm::new(&dev, model.clone(), seed), dev, gmm.clone())
                    .map_err(|e| anyhow!("unusable mixture: {e}"))?,
            ),
            FittedMeta::Egbad { model } => Detector::Egbad(FittedEgbad {
                model: Egbad::new(&dev, model.clone(), seed),
                dev,
                choice: None,
            }),
        })
    }
}

impl Params for Detector {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        match self {
            Detector::Dagmm(d) => d.model.visit_params(prefix, f),
            Detector::Egbad(d) => d.model.visit_params(prefix, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egbad() -> Network {
        let config = DetectorConfig::Egbad(EgbadConfig {
            choose_by_tail: false,
            ..EgbadConfig::default_for(6)
        });
        Network::new(&config, &Dev::default(), 0, 1e-4)
    }

    #[test]
    fn a_discriminator_that_wins_outright_is_a_divergence_and_a_contest_is_not() {
        let net = egbad();
        // KDDCUP's second epoch: D loss 0.086, right on 99.9 % real and 98.3 % generated.
        let lost = net.diverged(&[0.086, 10.8, 0.999, 0.983]).unwrap();
        assert!(lost.contains("0.086") && lost.contains("98.3 %"), "{lost}");
        for contest in [
            [1.35, 0.70, 0.55, 0.52],
            [0.086, 10.8, 0.999, 0.95],
            [0.2, 5.0, 0.99, 0.99],
        ] {
            assert_eq!(net.diverged(&contest), None, "{contest:?}");
        }
    }

    #[test]
    fn a_lost_game_scores_by_the_discriminator_alone() {
        let mut net = egbad();
        let rows = Matrix {
            rows: 8,
            cols: 6,
            data: (0..48).map(|i| ((i * 7 % 11) as f32) / 11.0).collect(),
        };
        let dev = Dev::default();
        let before = net.fit(&dev, &rows, None).unwrap().raw;
        assert!(net.score_by_discriminator(), "α was 0.9");
        assert!(!net.score_by_discriminator(), "once is enough");
        let Network::Egbad { model, .. } = &net else {
            unreachable!()
        };
        let parts = model.score_parts(&dev, &rows);
        let after = net.fit(&dev, &rows, None).unwrap().raw;
        assert_ne!(before, after);
        assert_eq!(after, parts.discriminator, "the score is L_D itself");
        let mut dagmm = Network::new(
            &DetectorConfig::Dagmm(crate::model::DagmmConfig::default_for(6)),
            &dev,
            0,
            1e-4,
        );
        assert!(!dagmm.score_by_discriminator(), "DAGMM has no game to lose");
    }
}

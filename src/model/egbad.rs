//! EGBAD (Zenati et al. 2018, "Efficient GAN-Based Anomaly Detection"): a BiGAN whose
//! encoder E, generator G and discriminator D(x, z) play
//! `min_{G,E} max_D E_x[log D(x, E(x))] + E_z[log(1 − D(G(z), z))]`, z ~ N(0, I).
//!
//! A row's anomaly score is `A(x) = α·‖x − G(E(x))‖₁ + (1 − α)·L_D(x)`, with `L_D` the
//! cross-entropy of D calling (x, E(x)) real, or the L1 distance between D's joint-layer
//! features of (x, E(x)) and (G(E(x)), E(x)) ("feature matching"). The architecture
//! follows the authors' tabular (KDDCUP) network; see [`EgbadConfig::default_for`].
//!
//! One deviation from the paper by default: E and G's loss also has a cycle term,
//! mean |x − G(E(x))| (ALICE's explicit cycle consistency), so that G learns to rebuild the
//! rows and the game stays anchored to the data ([`EgbadConfig::cycle`]).

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use anyhow::Result;
use dfdx::prelude::*;
use dfdx::tensor::Gradients;
use rand::{rngs::SmallRng, rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dense::{values, Activation, Adam, Dense, Dev, Mat, Mlp, ParamMut, Params};
use super::discriminator::{Discriminator, Judging, Player};
use super::ensemble::kept_rows;
use super::parallel::{sum_parts, Seat, StepThreads};
use crate::data::Matrix;

/// Rows per forward pass when scoring.
const INFER_CHUNK: usize = 8192;

/// The cycle term is measured on one row in this many of each batch (batches are
/// shuffled): on every row it cost an eighth of a training step (G's forward and backward
/// pass once more); README, "EGBAD's cycle term", has both measured.
const CYCLE_SHARE: usize = 4;

/// Which discrepancy of the discriminator enters the anomaly score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum EgbadScore {
    /// Cross-entropy of D calling (x, E(x)) real (the authors' "σ" variant).
    #[default]
    Xent,
    /// L1 distance of D's joint-layer features between (x, E(x)) and (G(E(x)), E(x)).
    Fm,
}

/// Everything that fixes the shape of an EGBAD and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgbadConfig {
    /// Encoded input width.
    pub input: usize,
    /// Encoder hidden width (one hidden layer, leaky ReLU).
    pub hidden: usize,
    /// Size of the latent code z.
    pub latent: usize,
    /// Width of each discriminator branch and of its joint layer.
    pub discriminator: usize,
    /// Dropout in the discriminator (training only).
    pub dropout: f64,
    /// Slope of the leaky ReLUs below zero.
    pub leak: f64,
    /// Weight α of the reconstruction term in the score (1 − α on the discriminator term).
    pub alpha: f64,
    pub score: EgbadScore,
    /// When set, each member chooses at fit between the score `α·L_G + (1 − α)·L_D` and
    /// L_D alone: whichever has the longer right tail over the fitted rows (see
    /// [`Egbad::choose_score`]). Off when `--alpha` is given; absent (off) in older checkpoints.
    #[serde(default)]
    pub choose_by_tail: bool,
    /// Weight of the cycle term, the mean |x − G(E(x))| over a batch's values, in E and G's
    /// loss (ALICE's explicit cycle consistency, Li et al. 2017). Without it the generator
    /// never learns to reconstruct the rows and L_D swings with wherever G's samples happen
    /// to be (README, "EGBAD's cycle term"). 0: EGBAD as published; absent (0) in older
    /// checkpoints.
    #[serde(default)]
    pub cycle: f64,
}

impl EgbadConfig {
    /// The default rule for an input of width `input`, which gives the authors' KDDCUP
    /// network for 120 or 121 inputs:
    /// - encoder `input → h → latent` with h = half the next power of two of the input,
    ///   clamped to 16..=64, and latent = min(h / 2, max(2, input / 2));
    /// - generator `latent → h → 2h → input` (ReLU, linear output);
    /// - discriminator branches `input → 2h` and `latent → 2h`, joint `4h → 2h`, then one
    ///   logit; leaky ReLU 0.1 and dropout 0.2 after each;
    /// - α = 0.9 and the cross-entropy score, as the authors' code;
    /// - the cycle term at weight 1 (not in the paper, see [`EgbadConfig::cycle`]).
    pub fn default_for(input: usize) -> Self {
        let hidden = (input.next_power_of_two() / 2).clamp(16, 64);
        let latent = (hidden / 2).min((input / 2).max(2));
        Self {
            input,
            hidden,
            latent,
            discriminator: 2 * hidden,
            dropout: 0.2,
            leak: 0.1,
            alpha: 0.9,
            score: EgbadScore::Xent,
            choose_by_tail: true,
            cycle: 1.0,
        }
    }

    /// One line naming the architecture, for status lines and logs.
    pub fn describe(&self) -> String {
        format!(
            "EGBAD {}-{}-{} D {} α={} {} cycle={}",
            self.input,
            self.hidden,
            self.latent,
            self.discriminator,
            self.alpha,
            match self.score {
                EgbadScore::Xent => "xent",
                EgbadScore::Fm => "fm",
            },
            self.cycle
        )
    }

    /// Checks sizes and weights make sense, so a bad flag is an error, not a panic.
    pub fn validate(&self) -> Result<(), String> {
        if self.input == 0 {
            return Err("the data has no usable feature columns".into());
        }
        if self.hidden == 0 || self.latent == 0 || self.discriminator == 0 {
            return Err("hidden, latent and discriminator widths must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(format!("α must be in [0, 1], got {}", self.alpha));
        }
        if !(self.cycle.is_finite() && self.cycle >= 0.0) {
            return Err(format!(
                "the cycle term's weight must be a finite number ≥ 0, got {}",
                self.cycle
            ));
        }
        if !(0.0..1.0).contains(&self.leak) {
            return Err(format!(
                "the leaky ReLU slope must be in [0, 1), got {}",
                self.leak
            ));
        }
        Ok(())
    }
}

/// Why a member scores by L_D alone: anomalies are few and far, so a score that ranks
/// them puts a few rows far above the bulk (a long right tail). When the generator never
/// learnt to reconstruct the rows, ‖x − G(E(x))‖₁ is only a distance from G's near-constant
/// output, and on data whose bulk is far from that point (KDDCUP: the attack traffic) it has
/// no right tail while L_D has a long one. The skewness of each score over the fitted rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailChoice {
    pub combined: f64,
    pub discriminator: f64,
}

impl std::fmt::Display for TailChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scored by L_D alone: its right tail is long and longer than the combined score's (skewness {:.2} against {:.2})",
            self.discriminator, self.combined
        )
    }
}

/// The sample skewness (third standardised moment) of `v`; `None` for fewer than three
/// values or no spread.
pub fn skewness(v: &[f64]) -> Option<f64> {
    if v.len() < 3 {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let (m2, m3) = v.iter().fold((0.0, 0.0), |(m2, m3), x| {
        let d = x - mean;
        (m2 + d * d, m3 + d * d * d)
    });
    let (m2, m3) = (m2 / n, m3 / n);
    let skew = m3 / m2.powf(1.5);
    (m2 > 0.0 && skew.is_finite()).then_some(skew)
}

/// How skewed L_D must be before a member may switch to it: skewness above 1 is the usual
/// mark of a highly skewed distribution (Bulmer's rule of thumb). Below it neither score has
/// a long tail (a member fitted on clean rows, as the paper's protocol fits, has none), and
/// which of two near-symmetric scores is the more skewed is noise: on a file whose anomalies
/// lie outside every training row's range, L_D ranks them lowest (D calls rows G never
/// produces real) and switching on skewness 0.08 against 0.05 turned a run upside down.
pub const LONG_TAIL_SKEWNESS: f64 = 1.0;

/// An EGBAD: its configuration and three networks.
#[derive(Debug, Clone)]
pub struct Egbad {
    pub config: EgbadConfig,
    pub encoder: Mlp,
    pub generator: Mlp,
    pub discriminator: Discriminator,
}

/// The losses of one training step (the quantities the UI plots).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GanLosses {
    /// Discriminator loss: cross-entropy on real pairs (x, E(x)) plus on generated (G(z), z).
    pub discriminator: f64,
    /// Generator + encoder loss: each fooling D on its side, plus the cycle term.
    pub generator_encoder: f64,
    /// Share of real pairs D calls real.
    pub real_accuracy: f64,
    /// Share of generated pairs D calls generated.
    pub fake_accuracy: f64,
}

/// D's half of a part's step: its loss and how many real and generated pairs it judged
/// right (what the parts hand in at their meeting).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct DiscriminatorLoss {
    value: f64,
    real: usize,
    fake: usize,
}

impl DiscriminatorLoss {
    fn add(self, other: Self) -> Self {
        Self {
            value: self.value + other.value,
            real: self.real + other.real,
            fake: self.fake + other.fake,
        }
    }
}

/// What the parts' meeting gives their second half: D's summed loss and D updated, or
/// `None` when the loss was not finite (the step is dropped).
type DiscriminatorHalf = Result<Option<(DiscriminatorLoss, Discriminator)>>;

/// Per-row parts of the anomaly score.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScoreParts {
    /// ‖x − G(E(x))‖₁.
    pub reconstruction: Vec<f64>,
    /// The discriminator term (cross-entropy or feature matching).
    pub discriminator: Vec<f64>,
}

impl Egbad {
    /// A freshly initialised EGBAD; the same seed gives the same weights.
    pub fn new(dev: &Dev, config: EgbadConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let leaky = Activation::Leaky(config.leak as f32);
        let c = &config;
        let encoder = Mlp::with_activation(dev, &[c.input, c.hidden, c.latent], leaky, &mut rng);
        let generator = Mlp::with_activation(
            dev,
            &[c.latent, c.hidden, 2 * c.hidden, c.input],
            Activation::Relu,
            &mut rng,
        );
        let discriminator = Discriminator {
            x_branch: Dense::new(dev, c.input, c.discriminator, &mut rng),
            z_branch: Dense::new(dev, c.latent, c.discriminator, &mut rng),
            joint: Dense::new(dev, 2 * c.discriminator, c.discriminator, &mut rng),
            logit: Dense::new(dev, c.discriminator, 1, &mut rng),
        };
        Self {
            config,
            encoder,
            generator,
            discriminator,
        }
    }

    /// How D's layers run in a training pass.
    fn judging(&self) -> Judging {
        Judging {
            leak: self.config.leak as f32,
            dropout: self.config.dropout,
        }
    }

    /// One round of the game on `x`: D's update on real pairs (x, E(x)) and generated ones
    /// (G(z), z), `z` drawn from N(0, I) on `dev` (row for row with `x`); then E and G's
    /// update, each rewarded when the updated D takes its side for the other (G(z) called
    /// real, E(x) called generated), and both by G(E(x)) rebuilding x when
    /// [`EgbadConfig::cycle`] is set. Each player's gradients reach its own networks only.
    ///
    /// The batch is split over `threads` as [`StepThreads::map_parts_meeting`] decides; a
    /// part computes E(x) and G(z) once for both players' halves (E and G do not change in
    /// between), and the parts meet to sum D's gradients and update D. The step runs on the
    /// threads' lead ([`StepThreads::lead`]). `None` when a loss or a gradient was not
    /// finite: nothing changed when it was D's; when it was E and G's, D's update stands
    /// and theirs is dropped.
    pub fn train_step(
        &mut self,
        optimisers: (&mut Adam, &mut Adam),
        threads: &StepThreads,
        dev: &Dev,
        x: &Matrix,
    ) -> Result<Option<GanLosses>> {
        let (discriminator, generator_encoder) = optimisers;
        let n = x.rows;
        threads.lead(n, || {
            let z = standard_normal(dev, n, self.config.latent);
            let model = &*self;
            let optimiser = Mutex::new(discriminator);
            // Halfway: D's gradients summed over the parts and D updated, which E and G's
            // half then plays against (`None` when D's loss was not finite).
            let join = |parts: Vec<(DiscriminatorLoss, Gradients<f32, Dev>)>| {
                let (loss, mut grads) = sum_parts(
                    &mut model.discriminator.clone(),
                    parts,
                    DiscriminatorLoss::add,
                )?;
                if !loss.value.is_finite() {
                    return Ok(None);
                }
                let mut updated = model.discriminator.clone();
                let applied = optimiser
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .update(&mut updated, &mut grads)?;
                Ok(applied.then_some((loss, updated)))
            };
            let (joined, parts) = threads.map_parts_meeting(dev, n, join, |rows, dev, seat| {
                model.part_step(dev, (x, &z), rows, seat)
            });
            let Some((loss, updated)) = joined.transpose()?.flatten() else {
                return Ok(None);
            };
            let parts: Option<Vec<_>> = parts.into_iter().collect();
            let Some(parts) = parts else {
                return Ok(None);
            };
            self.discriminator = updated;
            let (ge, mut grads) =
                sum_parts(&mut self.clone().generator_encoder(), parts, |a, b| a + b)?;
            if !ge.is_finite() {
                return Ok(None);
            }
            if !generator_encoder.update(&mut self.generator_encoder(), &mut grads)? {
                return Ok(None);
            }
            Ok(Some(GanLosses {
                discriminator: loss.value,
                generator_encoder: ge,
                real_accuracy: loss.real as f64 / n as f64,
                fake_accuracy: loss.fake as f64 / n as f64,
            }))
        })
    }

    /// One part's share of [`train_step`](Self::train_step): D's half, the meeting, then E
    /// and G's half against the updated D. Losses are summed over the part's pairs and
    /// divided by the whole batch's rows, so the parts add up to the authors' sum of the
    /// two means over the batch. `None` when the step stops at the meeting.
    fn part_step(
        &self,
        dev: &Dev,
        (x, z): (&Matrix, &Matrix),
        rows: Range<usize>,
        seat: &Seat<'_, (DiscriminatorLoss, Gradients<f32, Dev>), DiscriminatorHalf>,
    ) -> Option<(f64, Gradients<f32, Dev>)> {
        let batch_rows = x.rows;
        let scale = 1.0 / batch_rows as f32;
        let m = rows.len();
        let encoded = (self.encoder).forward_data::<OwnedTape<f32, Dev>>(&part_of(dev, x, &rows));
        let generated =
            (self.generator).forward_data::<OwnedTape<f32, Dev>>(&part_of(dev, z, &rows));
        let (x, z) = (
            &x.data[rows.start * x.cols..rows.end * x.cols],
            &z.data[rows.start * z.cols..rows.end * z.cols],
        );

        // D's half: E(x) and G(z) on fresh tapes, so gradients reach D only.
        let logits = self.discriminator.play(
            dev,
            (x, encoded.retaped::<OwnedTape<f32, Dev>>()),
            (generated.retaped(), z),
            self.judging(),
            Player::Discriminator,
        );
        let judged = logits.as_vec();
        let loss = logits
            .bce_with_logits(targets(dev, m, true))
            .sum::<Rank0, _>()
            * scale;
        let handed = DiscriminatorLoss {
            value: loss.array() as f64,
            real: judged[..m].iter().filter(|&&l| l > 0.0).count(),
            fake: judged[m..].iter().filter(|&&l| l < 0.0).count(),
        };
        let Ok(Some((_, updated))) = seat.meet((handed, loss.backward()))? else {
            return None;
        };

        // E and G's half, through the updated D.
        let loss = self.generator_encoder_loss(
            updated,
            dev,
            (x, encoded),
            (generated, z),
            (rows.start, batch_rows),
        );
        Some((loss.array() as f64, loss.backward()))
    }

    /// E and G's loss against the discriminator `judge`, each term summed over the pairs and
    /// divided by the batch's rows: each fooling D on its side (G(z) called real, E(x) called generated),
    /// plus the cycle term, [`EgbadConfig::cycle`] × the mean |x − G(E(x))| per value over
    /// one row in [`CYCLE_SHARE`] of the batch (`first_row` is the batch row the pairs start at). G(E(x))
    /// runs on a tape of its own, which the sum merges with the game's, so E's gradient
    /// gets both terms.
    fn generator_encoder_loss<T: Tape<f32, Dev> + Merge<T> + Default>(
        &self,
        judge: &Discriminator,
        dev: &Dev,
        (x, encoded): (&[f32], Mat<T>),
        (generated, z): (Mat<T>, &[f32]),
        (first_row, batch_rows): (usize, usize),
    ) -> Tensor<Rank0, f32, Dev, T> {
        let scale = 1.0 / batch_rows as f32;
        let m = encoded.shape().0;
        // The batch's rows whose index is a multiple of the share: the same rows however
        // the batch is split.
        let cycled: Vec<usize> = (0..m)
            .filter(|r| (first_row + r) % CYCLE_SHARE == 0)
            .collect();
        let rebuilt = (self.config.cycle > 0.0 && !cycled.is_empty())
            .then(|| (self.generator).forward_traced(encoded.with_empty_tape(), &cycled));
        let logits = judge.play(
            dev,
            (x, encoded),
            (generated, z),
            self.judging(),
            Player::GeneratorEncoder,
        );
        let game = logits
            .bce_with_logits(targets(dev, m, false))
            .sum::<Rank0, _>()
            * scale;
        match rebuilt {
            Some(rebuilt) => {
                let width = x.len() / m;
                let target = (cycled.iter())
                    .flat_map(|&r| x[r * width..(r + 1) * width].iter().copied())
                    .collect();
                let target: Mat = dev.tensor_from_vec(target, *rebuilt.shape());
                let values = batch_rows.div_ceil(CYCLE_SHARE) * rebuilt.shape().1;
                let per_value = self.config.cycle as f32 / values as f32;
                game + (rebuilt - target).abs().sum::<Rank0, _>() * per_value
            }
            None => game,
        }
    }

    /// The score parts of every row of `x` (evaluation mode: no dropout, no tape), chunks
    /// of rows in parallel over the current rayon pool.
    pub fn score_parts(&self, dev: &Dev, x: &Matrix) -> ScoreParts {
        let chunks: Vec<(Vec<f64>, Vec<f64>)> = x
            .data
            .par_chunks(INFER_CHUNK * x.cols.max(1))
            .map(|rows| {
                let n = rows.len() / x.cols.max(1);
                self.chunk_parts(dev.tensor_from_vec(rows.to_vec(), (n, x.cols)))
            })
            .collect();
        let mut out = ScoreParts {
            reconstruction: Vec::with_capacity(x.rows),
            discriminator: Vec::with_capacity(x.rows),
        };
        for (reconstruction, discriminator) in chunks {
            out.reconstruction.extend(reconstruction);
            out.discriminator.extend(discriminator);
        }
        out
    }

    fn chunk_parts(&self, x: Mat) -> (Vec<f64>, Vec<f64>) {
        let n = x.shape().0;
        let dev = x.device().clone();
        let dev = &dev;
        let code = self.encoder.forward(x.clone(), None);
        let rebuilt = self.generator.forward(code.clone(), None);
        let l1 = (x.clone() - rebuilt.clone())
            .abs()
            .sum::<(usize,), Axis<1>>()
            .as_vec();
        let leak = self.config.leak as f32;
        let (x, code) = (values(&x), values(&code));
        let discriminator = match self.config.score {
            EgbadScore::Xent => {
                let (logits, _) = self.discriminator.judge(x, code, leak);
                let logits: Mat = dev.tensor_from_vec(logits, (n, 1));
                let ones: Mat = dev.ones_like(&(n, 1usize));
                logits.bce_with_logits(ones).as_vec()
            }
            EgbadScore::Fm => {
                let (_, real) = self.discriminator.judge(x, code.clone(), leak);
                let (_, fake) = self.discriminator.judge(values(&rebuilt), code, leak);
                let width = real.len() / n.max(1);
                real.chunks_exact(width.max(1))
                    .zip(fake.chunks_exact(width.max(1)))
                    .map(|(r, f)| r.iter().zip(f).map(|(r, f)| (r - f).abs()).sum())
                    .collect()
            }
        };
        (
            l1.into_iter().map(f64::from).collect(),
            discriminator.into_iter().map(f64::from).collect(),
        )
    }

    /// The anomaly score `α·L_G + (1 − α)·L_D` from its parts.
    pub fn combine(&self, parts: &ScoreParts) -> Vec<f64> {
        let a = self.config.alpha;
        parts
            .reconstruction
            .iter()
            .zip(&parts.discriminator)
            .map(|(g, d)| a * g + (1.0 - a) * d)
            .collect()
    }

    /// Chooses, without labels, the score this member uses over the rows `parts` were
    /// measured on (those `keep` allows; all when `None`), when [`EgbadConfig::choose_by_tail`]
    /// is set: α = 0 (L_D alone) when L_D has a long right tail (skewness above
    /// [`LONG_TAIL_SKEWNESS`]), longer than the combined score's. Returns the choice when it
    /// changed α.
    pub fn choose_score(
        &mut self,
        parts: &ScoreParts,
        keep: Option<&[bool]>,
    ) -> Option<TailChoice> {
        if !self.config.choose_by_tail || self.config.alpha == 0.0 {
            return None;
        }
        let combined = skewness(&kept_rows(&self.combine(parts), 1, keep))?;
        let discriminator = skewness(&kept_rows(&parts.discriminator, 1, keep))?;
        (discriminator > combined && discriminator > LONG_TAIL_SKEWNESS).then(|| {
            self.config.alpha = 0.0;
            TailChoice {
                combined,
                discriminator,
            }
        })
    }

    /// G(E(x)) for one encoded row: the inspect view compares it feature by feature.
    pub fn reconstruct(&self, dev: &Dev, row: &[f32]) -> Vec<f32> {
        let x: Mat = dev.tensor_from_vec(row.to_vec(), (1, row.len()));
        let code = self.encoder.forward(x, None);
        self.generator.forward(code, None).as_vec()
    }

    /// The encoder and generator's parameters (what their optimiser updates).
    pub fn generator_encoder(&mut self) -> GeneratorEncoder<'_> {
        GeneratorEncoder(self)
    }
}

/// `rows × cols` draws from N(0, I), from a fast generator seeded by `dev` (so a seeded
/// device gives a reproducible run).
pub fn standard_normal(dev: &Dev, rows: usize, cols: usize) -> Matrix {
    let mut rng = SmallRng::seed_from_u64(dev.random_u64());
    let data = (0..rows * cols)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect();
    Matrix { rows, cols, data }
}

/// Rows `rows` of `m` as a tensor on `dev`.
fn part_of(dev: &Dev, m: &Matrix, rows: &std::ops::Range<usize>) -> Mat {
    let values = m.data[rows.start * m.cols..rows.end * m.cols].to_vec();
    dev.tensor_from_vec(values, (rows.len(), m.cols))
}

/// `n` real then `n` generated targets: 1 then 0 for the discriminator's view
/// (`discriminator = true`), flipped for the generator and encoder's.
fn targets(dev: &Dev, n: usize, discriminator: bool) -> Mat {
    let (first, second) = if discriminator {
        (1.0, 0.0)
    } else {
        (0.0, 1.0)
    };
    let mut values = vec![first; n];
    values.resize(2 * n, second);
    dev.tensor_from_vec(values, (2 * n, 1))
}

/// The encoder and generator of an EGBAD, seen as one parameter set.
pub struct GeneratorEncoder<'a>(&'a mut Egbad);

impl Params for GeneratorEncoder<'_> {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        self.0.encoder.visit_params(&format!("{prefix}.encoder"), f);
        self.0
            .generator
            .visit_params(&format!("{prefix}.generator"), f);
    }
}

impl Params for Egbad {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        self.generator_encoder().visit_params(prefix, f);
        self.discriminator
            .visit_params(&format!("{prefix}.discriminator"), f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dense::snapshot;

    #[test]
    fn default_rule_gives_the_authors_kddcup_network() {
        let c = EgbadConfig::default_for(121);
        assert_eq!((c.hidden, c.latent, c.discriminator), (64, 32, 128));
        assert_eq!(EgbadConfig::default_for(120).latent, 32);
        let small = EgbadConfig::default_for(6);
        assert_eq!((small.hidden, small.latent), (16, 3));
        assert!(small.validate().is_ok());
    }

    fn rows_of(rows: usize, cols: usize) -> Matrix {
        Matrix {
            rows,
            cols,
            data: (0..rows * cols)
                .map(|i| ((i * 7919) % 101) as f32 / 101.0)
                .collect(),
        }
    }

    /// E and G's loss with the cycle term against central finite differences in every
    /// weight of E and G: E's gradient must carry both the game's share and the cycle's
    /// (G(E(x)) runs on a tape of its own, merged in the sum).
    #[test]
    fn generator_encoder_gradients_match_finite_differences_with_the_cycle_term() {
        let dev = Dev::seed_from_u64(0);
        let config = EgbadConfig {
            dropout: 0.0,
            cycle: 3.0,
            ..EgbadConfig::default_for(5)
        };
        let model = Egbad::new(&dev, config, 2);
        // Eight pairs from row 2 of a 12-row batch: the cycle term reads pairs 2 and 6.
        let x = rows_of(8, 5);
        let z = standard_normal(&dev, 8, model.config.latent);
        let (xt, zt) = (part_of(&dev, &x, &(0..8)), part_of(&dev, &z, &(0..8)));
        let loss = |m: &Egbad| -> f64 {
            let encoded = m.encoder.forward_data::<NoneTape>(&xt);
            let generated = m.generator.forward_data::<NoneTape>(&zt);
            let d = &m.discriminator;
            let loss = m.generator_encoder_loss(
                d,
                &dev,
                (&x.data, encoded),
                (generated, &z.data),
                (2, 12),
            );
            loss.array() as f64
        };
        let encoded = model.encoder.forward_data::<OwnedTape<f32, Dev>>(&xt);
        let generated = model.generator.forward_data::<OwnedTape<f32, Dev>>(&zt);
        let d = &model.discriminator;
        let grads = model
            .generator_encoder_loss(d, &dev, (&x.data, encoded), (generated, &z.data), (2, 12))
            .backward();
        let h = 1e-2f32;
        let count = model.encoder.layers.len() + model.generator.layers.len();
        for which in 0..count {
            fn layer(m: &mut Egbad, which: usize) -> &mut Dense {
                (m.encoder.layers.iter_mut())
                    .chain(m.generator.layers.iter_mut())
                    .nth(which)
                    .expect("a layer of E or G")
            }
            let analytic = grads.get(&layer(&mut model.clone(), which).weight).as_vec();
            for (i, expected) in analytic.iter().enumerate() {
                let nudged = |by: f32| {
                    let mut m = model.clone();
                    let nudged = layer(&mut m, which);
                    let mut w = values(&nudged.weight);
                    w[i] += by;
                    nudged.weight.copy_from(&w);
                    loss(&m)
                };
                let numeric = (nudged(h) - nudged(-h)) / (2.0 * h as f64);
                assert!(
                    (numeric - *expected as f64).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "layer {which} w[{i}]: {numeric} vs {expected}"
                );
            }
        }
    }

    /// What the cycle term is for: with it, G(E(x)) learns to rebuild the rows; without it
    /// (EGBAD as published) it need not. Rows on a plane in 6 dimensions, the same seed
    /// and steps for both.
    #[test]
    fn the_cycle_term_teaches_the_generator_to_rebuild_the_rows() {
        let plane = |i: usize| {
            let (a, b) = ((i as f32 * 0.61).sin(), (i as f32 * 0.23).cos());
            [a, b, a + b, a - b, 0.5 * a, -b]
        };
        let x = Matrix {
            rows: 256,
            cols: 6,
            data: (0..256).flat_map(plane).collect(),
        };
        let rebuilt_error = |cycle: f64| {
            let dev = Dev::seed_from_u64(3);
            let config = EgbadConfig {
                cycle,
                ..EgbadConfig::default_for(6)
            };
            let mut model = Egbad::new(&dev, config, 3);
            let (mut d, mut ge) = (Adam::new(1e-3), Adam::new(1e-3));
            let threads = StepThreads::new(1, 0).unwrap();
            for step in 0..300 {
                let rows: Vec<usize> = (0..64).map(|r| (step * 64 + r) % 256).collect();
                model
                    .train_step((&mut d, &mut ge), &threads, &dev, &x.gather(&rows))
                    .unwrap();
            }
            let parts = model.score_parts(&dev, &x);
            parts.reconstruction.iter().sum::<f64>() / 256.0
        };
        let (published, with_cycle) = (rebuilt_error(0.0), rebuilt_error(1.0));
        assert!(
            with_cycle < 0.5 * published,
            "mean ‖x − G(E(x))‖₁: {with_cycle} with the cycle term, {published} without"
        );
    }

    #[test]
    fn a_training_step_moves_every_network() {
        let dev = Dev::seed_from_u64(0);
        let mut model = Egbad::new(&dev, EgbadConfig::default_for(5), 1);
        let before = snapshot(&mut model);
        let (mut d, mut ge) = (Adam::new(1e-2), Adam::new(1e-2));
        let threads = StepThreads::new(1, 0).unwrap();
        let losses = model
            .train_step((&mut d, &mut ge), &threads, &dev, &rows_of(8, 5))
            .unwrap()
            .expect("a finite step");
        assert!(losses.discriminator > 0.0 && losses.generator_encoder.is_finite());
        for ((name, _, old), (_, _, new)) in before.iter().zip(snapshot(&mut model)) {
            assert!(old != &new || name.contains("bias"), "{name} did not move");
        }
    }

    #[test]
    fn a_step_split_over_two_threads_equals_the_step_in_one_part() {
        let config = EgbadConfig {
            dropout: 0.0,
            ..EgbadConfig::default_for(6)
        };
        let rows = 2 * crate::model::parallel::MIN_PART_ROWS;
        let x = rows_of(rows, 6);
        let (one, two) = (
            StepThreads::new(1, 0).unwrap(),
            StepThreads::new(2, 0).unwrap(),
        );
        assert!(two.splits(rows) && !one.splits(rows));
        let run = |threads: &StepThreads| {
            let dev = Dev::seed_from_u64(0);
            let mut model = Egbad::new(&dev, config.clone(), 3);
            let (mut d, mut ge) = (Adam::new(1e-3), Adam::new(1e-3));
            let losses: Vec<GanLosses> = (0..3)
                .map(|_| {
                    model
                        .train_step((&mut d, &mut ge), threads, &dev, &x)
                        .unwrap()
                        .expect("a finite step")
                })
                .collect();
            (losses, snapshot(&mut model))
        };
        let (whole, whole_weights) = run(&one);
        let (split, split_weights) = run(&two);
        for (a, b) in whole.iter().zip(&split) {
            assert!(
                (a.discriminator - b.discriminator).abs() < 1e-4,
                "{a:?} vs {b:?}"
            );
            assert!(
                (a.generator_encoder - b.generator_encoder).abs() < 1e-4,
                "{a:?} vs {b:?}"
            );
            assert_eq!(
                (a.real_accuracy, a.fake_accuracy),
                (b.real_accuracy, b.fake_accuracy)
            );
        }
        // Adam moves a weight by about its learning rate whatever the gradient's size, so
        // a gradient near zero whose sign the summation order flips moves apart by twice
        // that; every other weight agrees to rounding.
        let (mut agree, mut all) = (0, 0);
        for ((name, _, a), (_, _, b)) in whole_weights.iter().zip(&split_weights) {
            for (a, b) in a.iter().zip(b) {
                assert!((a - b).abs() < 7e-3, "{name}: {a} vs {b}");
                agree += usize::from((a - b).abs() < 1e-5);
                all += 1;
            }
        }
        assert!(agree as f64 >= 0.99 * all as f64, "{agree} of {all} agree");
    }

    #[test]
    fn skewness_is_zero_for_a_symmetric_sample_and_positive_for_a_right_tail() {
        assert_eq!(skewness(&[1.0, 2.0, 3.0]), Some(0.0));
        assert!(skewness(&[0.0, 0.0, 0.0, 0.0, 10.0]).unwrap() > 1.0);
        assert!(skewness(&[10.0, 10.0, 10.0, 10.0, 0.0]).unwrap() < -1.0);
        assert_eq!(skewness(&[2.0, 2.0, 2.0]), None, "no spread");
        assert_eq!(skewness(&[1.0, 2.0]), None, "too few");
    }

    #[test]
    fn a_member_scores_by_l_d_alone_when_its_tail_is_the_longer_one() {
        let dev = Dev::seed_from_u64(0);
        let model = Egbad::new(&dev, EgbadConfig::default_for(4), 1);
        // KDDCUP's shape: the reconstruction has a long left tail (most rows far from
        // G's output, a few near it), L_D a long right one.
        let n = 100;
        let far = |i: usize| {
            if i < 5 {
                1.0
            } else {
                10.0 + (i % 7) as f64 * 0.1
            }
        };
        let tail = |i: usize| {
            if i >= 95 {
                8.0
            } else {
                0.5 + (i % 5) as f64 * 0.1
            }
        };
        let kdd = ScoreParts {
            reconstruction: (0..n).map(far).collect(),
            discriminator: (0..n).map(tail).collect(),
        };
        let mut chosen = model.clone();
        let choice = chosen
            .choose_score(&kdd, None)
            .expect("L_D's tail is longer");
        assert_eq!(chosen.config.alpha, 0.0);
        assert!(
            choice.discriminator > 0.0 && choice.combined < 0.0,
            "{choice:?}"
        );
        assert!(choice.to_string().contains("scored by L_D alone"));
        assert_eq!(
            chosen.choose_score(&kdd, None),
            None,
            "once chosen, it stays"
        );
        // The dev sets' shape: both parts have right tails, the combined score the longer.
        let outliers = ScoreParts {
            reconstruction: (0..n).map(|i| 20.0 - far(i)).collect(),
            discriminator: (0..n).map(|i| 1.0 + (i % 9) as f64 * 0.1).collect(),
        };
        let mut kept = model.clone();
        assert_eq!(kept.choose_score(&outliers, None), None);
        assert_eq!(kept.config.alpha, 0.9);
        // Only the kept rows count: L_D's tail is five rows an analyst marked anomalous;
        // without them it has none, and the combined score keeps its own.
        let marked_tail = ScoreParts {
            reconstruction: (0..n)
                .map(|i| {
                    if (90..95).contains(&i) {
                        12.0
                    } else {
                        (i % 10) as f64
                    }
                })
                .collect(),
            discriminator: (0..n).map(tail).collect(),
        };
        let keep: Vec<bool> = (0..n).map(|i| i < 95).collect();
        assert!(model.clone().choose_score(&marked_tail, None).is_some());
        let mut marked = model.clone();
        assert_eq!(marked.choose_score(&marked_tail, Some(&keep)), None);
        // Neither part has a long tail (a member fitted on clean rows): L_D's slightly
        // larger skewness is noise, and the combined score stays.
        let flat = ScoreParts {
            reconstruction: (0..n).map(|i| (i % 10) as f64).collect(),
            discriminator: (0..n)
                .map(|i| if i >= 90 { 0.7 } else { (i % 5) as f64 * 0.1 })
                .collect(),
        };
        let flat_skew = skewness(&flat.discriminator).unwrap();
        assert!(
            flat_skew > skewness(&model.combine(&flat)).unwrap() && flat_skew < LONG_TAIL_SKEWNESS,
            "L_D's skewness {flat_skew}"
        );
        assert_eq!(model.clone().choose_score(&flat, None), None);
        // Off (an α the user gave): never chosen.
        let mut asked = Egbad::new(
            &dev,
            EgbadConfig {
                choose_by_tail: false,
                ..EgbadConfig::default_for(4)
            },
            1,
        );
        assert_eq!(asked.choose_score(&kdd, None), None);
        assert_eq!(asked.config.alpha, 0.9);
    }

    #[test]
    fn scores_combine_their_parts_with_alpha() {
        let dev = Dev::seed_from_u64(0);
        for score in [EgbadScore::Xent, EgbadScore::Fm] {
            let config = EgbadConfig {
                score,
                ..EgbadConfig::default_for(4)
            };
            let model = Egbad::new(&dev, config, 2);
            let x = Matrix {
                rows: 3,
                cols: 4,
                data: vec![0.0, 0.5, 1.0, 0.2, 1.0, 1.0, 0.0, 0.0, 0.3, 0.3, 0.3, 0.3],
            };
            let parts = model.score_parts(&dev, &x);
            let scores = model.combine(&parts);
            for (r, score) in scores.iter().enumerate() {
                let rebuilt = model.reconstruct(&dev, x.row(r));
                let l1: f64 = x
                    .row(r)
                    .iter()
                    .zip(&rebuilt)
                    .map(|(a, b)| (a - b).abs() as f64)
                    .sum();
                assert!((l1 - parts.reconstruction[r]).abs() < 1e-5);
                assert!(parts.discriminator[r] >= 0.0);
                let expected = 0.9 * parts.reconstruction[r] + 0.1 * parts.discriminator[r];
                assert!((score - expected).abs() < 1e-9);
            }
        }
    }
}

//! EGBAD (Zenati et al. 2018, "Efficient GAN-Based Anomaly Detection"): a BiGAN whose
//! encoder E, generator G and discriminator D(x, z) play
//! `min_{G,E} max_D E_x[log D(x, E(x))] + E_z[log(1 − D(G(z), z))]`, z ~ N(0, I).
//!
//! A row's anomaly score is `A(x) = α·‖x − G(E(x))‖₁ + (1 − α)·L_D(x)`, with `L_D` the
//! cross-entropy of D calling (x, E(x)) real, or the L1 distance between D's joint-layer
//! features of (x, E(x)) and (G(E(x)), E(x)) ("feature matching"). The architecture
//! follows the authors' tabular (KDDCUP) network; see [`EgbadConfig::default_for`].

use anyhow::Result;
use dfdx::prelude::*;
use dfdx::tensor::Gradients;
use rand::{rngs::SmallRng, rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::dense::{concat, Activation, Backprop, Dense, Dev, Dropout, Mat, Mlp, ParamMut, Params};
use super::parallel::{sum_parts, StepThreads};
use crate::data::Matrix;

/// Rows per forward pass when scoring.
const INFER_CHUNK: usize = 8192;

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
}

impl EgbadConfig {
    /// The default rule for an input of width `input`, which gives the authors' KDDCUP
    /// network for 120 or 121 inputs:
    /// - encoder `input → h → latent` with h = half the next power of two of the input,
    ///   clamped to 16..=64, and latent = min(h / 2, max(2, input / 2));
    /// - generator `latent → h → 2h → input` (ReLU, linear output);
    /// - discriminator branches `input → 2h` and `latent → 2h`, joint `4h → 2h`, then one
    ///   logit; leaky ReLU 0.1 and dropout 0.2 after each;
    /// - α = 0.9 and the cross-entropy score, as the authors' code.
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
        }
    }

    /// One line naming the architecture, for status lines and logs.
    pub fn describe(&self) -> String {
        format!(
            "EGBAD {}-{}-{} D {} α={} {}",
            self.input,
            self.hidden,
            self.latent,
            self.discriminator,
            self.alpha,
            match self.score {
                EgbadScore::Xent => "xent",
                EgbadScore::Fm => "fm",
            }
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
        if !(0.0..1.0).contains(&self.leak) {
            return Err(format!(
                "the leaky ReLU slope must be in [0, 1), got {}",
                self.leak
            ));
        }
        Ok(())
    }
}

/// The discriminator D(x, z): an x branch and a z branch, joined.
#[derive(Debug, Clone)]
pub struct Discriminator {
    pub x_branch: Dense,
    pub z_branch: Dense,
    /// Its output (after the activation) is f_D, the features feature matching compares.
    pub joint: Dense,
    pub logit: Dense,
}

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
    /// Generator + encoder loss: each fooling D on its side.
    pub generator_encoder: f64,
    /// Share of real pairs D calls real.
    pub real_accuracy: f64,
    /// Share of generated pairs D calls generated.
    pub fake_accuracy: f64,
}

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

    /// D's logits for the pairs (x, z) row by row, and its joint features (off the tape:
    /// only scoring reads them). `pass` says which player, if any, learns from this pass:
    /// it sets dropout (training only) and which gradients D's layers compute.
    fn discriminate<T: Tape<f32, Dev>>(
        &self,
        dev: &Dev,
        x: Mat<T>,
        z: Mat<T>,
        pass: Pass,
    ) -> (Mat<T>, Mat) {
        let d = &self.discriminator;
        let leaky = Some(Activation::Leaky(self.config.leak as f32));
        let (branches, top) = match pass {
            Pass::Score | Pass::Discriminator => (Backprop::PARAMS, Backprop::ALL),
            Pass::GeneratorEncoder => (Backprop::INPUT, Backprop::INPUT),
        };
        let p = self.config.dropout;
        let drop = || (pass != Pass::Score && p > 0.0).then(|| Dropout::drawn(dev, p));
        let hx = d.x_branch.layer(x, leaky, drop(), branches);
        let hz = d.z_branch.layer(z, leaky, drop(), branches);
        let joined = concat(hx, hz, false);
        let features = d.joint.layer(joined, leaky, drop(), top);
        let plain = features.retaped::<NoneTape>();
        (d.logit.layer(features, None, None, top), plain)
    }

    /// The discriminator's step on a batch: real pairs (x, E(x)) and generated pairs
    /// (G(z), z), `z` drawn from N(0, I) (row for row with `x`); gradients reach D only.
    /// The batch is split over `threads` as [`StepThreads::map_parts`] decides.
    pub fn discriminator_step(
        &self,
        threads: &StepThreads,
        dev: &Dev,
        x: &Matrix,
        z: &Matrix,
    ) -> Result<(GanLosses, Gradients<f32, Dev>)> {
        let n = x.rows;
        let parts = threads.map_parts(dev, n, |rows, dev| {
            let (x, z) = (part_of(dev, x, &rows), part_of(dev, z, &rows));
            let m = rows.len();
            let encoded = self.encoder.forward(x.clone(), None);
            let generated = self.generator.forward(z.clone(), None);
            let inputs = concat(x, generated, true);
            let codes = concat(encoded, z, true);
            let (logits, _) = self.discriminate(
                dev,
                inputs.retaped::<OwnedTape<f32, Dev>>(),
                codes.retaped(),
                Pass::Discriminator,
            );
            let values = logits.as_vec();
            let real = values[..m].iter().filter(|&&l| l > 0.0).count();
            let fake = values[m..].iter().filter(|&&l| l < 0.0).count();
            // Summed over the part's 2m pairs, over n: the parts add up to the authors' sum
            // of the two means over the batch.
            let loss = logits
                .bce_with_logits(targets(dev, m, true))
                .sum::<Rank0, _>()
                * (1.0 / n as f32);
            let value = loss.array() as f64;
            ((value, real, fake), loss.backward())
        });
        let ((loss, real, fake), grads) =
            sum_parts(&mut self.discriminator.clone(), parts, |a, b| {
                (a.0 + b.0, a.1 + b.1, a.2 + b.2)
            })?;
        let losses = GanLosses {
            discriminator: loss,
            real_accuracy: real as f64 / n as f64,
            fake_accuracy: fake as f64 / n as f64,
            ..GanLosses::default()
        };
        Ok((losses, grads))
    }

    /// The generator's and encoder's step on the same batch: each is rewarded when D takes
    /// its side for the other (G(z) called real, E(x) called generated); gradients reach
    /// E and G only (D's layers pass gradients through without computing their own).
    pub fn generator_encoder_step(
        &self,
        threads: &StepThreads,
        dev: &Dev,
        x: &Matrix,
        z: &Matrix,
    ) -> Result<(f64, Gradients<f32, Dev>)> {
        let n = x.rows;
        let parts = threads.map_parts(dev, n, |rows, dev| {
            let (x, z) = (part_of(dev, x, &rows), part_of(dev, z, &rows));
            let m = rows.len();
            let encoded = self.encoder.forward_data::<OwnedTape<f32, Dev>>(&x, None);
            let generated = self.generator.forward_data::<OwnedTape<f32, Dev>>(&z, None);
            let inputs = concat(x.retaped::<OwnedTape<f32, Dev>>(), generated, true);
            let codes = concat(encoded, z.retaped::<OwnedTape<f32, Dev>>(), true);
            let (logits, _) = self.discriminate(dev, inputs, codes, Pass::GeneratorEncoder);
            let loss = logits
                .bce_with_logits(targets(dev, m, false))
                .sum::<Rank0, _>()
                * (1.0 / n as f32);
            let value = loss.array() as f64;
            (value, loss.backward())
        });
        sum_parts(&mut self.clone().generator_encoder(), parts, |a, b| a + b)
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
        let discriminator = match self.config.score {
            EgbadScore::Xent => {
                let (logits, _) = self.discriminate(dev, x, code, Pass::Score);
                let ones: Mat = logits.device().ones_like(&(n, 1usize));
                logits.bce_with_logits(ones).as_vec()
            }
            EgbadScore::Fm => {
                let (_, real) = self.discriminate(dev, x, code.clone(), Pass::Score);
                let (_, fake) = self.discriminate(dev, rebuilt, code, Pass::Score);
                (real - fake).abs().sum::<(usize,), Axis<1>>().as_vec()
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

/// Which player a pass through D trains, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Score,
    Discriminator,
    GeneratorEncoder,
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

impl Params for Discriminator {
    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(String, ParamMut<'_>)) {
        self.x_branch.visit_params(&format!("{prefix}.x"), f);
        self.z_branch.visit_params(&format!("{prefix}.z"), f);
        self.joint.visit_params(&format!("{prefix}.joint"), f);
        self.logit.visit_params(&format!("{prefix}.logit"), f);
    }
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

    #[test]
    fn default_rule_gives_the_authors_kddcup_network() {
        let c = EgbadConfig::default_for(121);
        assert_eq!((c.hidden, c.latent, c.discriminator), (64, 32, 128));
        assert_eq!(EgbadConfig::default_for(120).latent, 32);
        let small = EgbadConfig::default_for(6);
        assert_eq!((small.hidden, small.latent), (16, 3));
        assert!(small.validate().is_ok());
    }

    #[test]
    fn every_network_gets_its_own_gradients() {
        let dev = Dev::seed_from_u64(0);
        let mut model = Egbad::new(&dev, EgbadConfig::default_for(5), 1);
        let x = Matrix {
            rows: 8,
            cols: 5,
            data: (0..40).map(|i| (i % 7) as f32 / 7.0).collect(),
        };
        let z = standard_normal(&dev, 8, model.config.latent);
        let threads = StepThreads::new(1, 0).unwrap();
        let (losses, d_grads) = model.discriminator_step(&threads, &dev, &x, &z).unwrap();
        assert!(losses.discriminator > 0.0 && losses.discriminator.is_finite());
        let (ge, ge_grads) = model
            .generator_encoder_step(&threads, &dev, &x, &z)
            .unwrap();
        assert!(ge.is_finite());
        let nonzero = |model: &mut dyn Params, grads: &Gradients<f32, Dev>| {
            let mut all = true;
            model.visit_params("", &mut |name, p| {
                let g = match p {
                    ParamMut::Matrix(t) => grads.get(&*t).as_vec(),
                    ParamMut::Vector(t) => grads.get(&*t).as_vec(),
                };
                all &= g.iter().any(|v| *v != 0.0) || name.contains("bias");
            });
            all
        };
        assert!(nonzero(&mut model.discriminator.clone(), &d_grads));
        assert!(nonzero(&mut model.generator_encoder(), &ge_grads));
    }

    #[test]
    fn a_step_split_over_two_threads_equals_the_step_in_one_part() {
        let dev = Dev::seed_from_u64(0);
        let config = EgbadConfig {
            dropout: 0.0,
            ..EgbadConfig::default_for(6)
        };
        let mut model = Egbad::new(&dev, config, 3);
        let rows = 2 * crate::model::parallel::MIN_PART_ROWS;
        let x = Matrix {
            rows,
            cols: 6,
            data: (0..rows * 6)
                .map(|i| ((i * 7919) % 101) as f32 / 101.0)
                .collect(),
        };
        let z = standard_normal(&dev, rows, model.config.latent);
        let (one, two) = (
            StepThreads::new(1, 0).unwrap(),
            StepThreads::new(2, 0).unwrap(),
        );
        assert!(two.splits(rows) && !one.splits(rows));
        let (whole, whole_grads) = model.discriminator_step(&one, &dev, &x, &z).unwrap();
        let (split, split_grads) = model.discriminator_step(&two, &dev, &x, &z).unwrap();
        assert!((whole.discriminator - split.discriminator).abs() < 1e-5);
        assert_eq!(whole.real_accuracy, split.real_accuracy);
        assert_eq!(whole.fake_accuracy, split.fake_accuracy);
        let (ge_whole, ge_whole_grads) = model.generator_encoder_step(&one, &dev, &x, &z).unwrap();
        let (ge_split, ge_split_grads) = model.generator_encoder_step(&two, &dev, &x, &z).unwrap();
        assert!((ge_whole - ge_split).abs() < 1e-5);
        let compare = |model: &mut dyn Params, a: &Gradients<f32, Dev>, b: &Gradients<f32, Dev>| {
            model.visit_params("", &mut |name, p| {
                let (a, b) = match p {
                    ParamMut::Matrix(t) => (a.get(&*t).as_vec(), b.get(&*t).as_vec()),
                    ParamMut::Vector(t) => (a.get(&*t).as_vec(), b.get(&*t).as_vec()),
                };
                for (a, b) in a.iter().zip(&b) {
                    assert!((a - b).abs() < 1e-5 * (1.0 + a.abs()), "{name}: {a} vs {b}");
                }
            });
        };
        compare(&mut model.discriminator.clone(), &whole_grads, &split_grads);
        compare(
            &mut model.generator_encoder(),
            &ge_whole_grads,
            &ge_split_grads,
        );
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

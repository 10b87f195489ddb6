//! The paper's evaluation protocol, run with honest bookkeeping: a random 50/50 split per
//! run, training on the normal rows of the training half only, the top X % of the test half
//! by energy flagged (X = the data's anomaly ratio unless given), and the same figures for
//! the untrained network with the same seed — an untrained DAGMM already scores well on
//! KDDCUP, so only the gap shows that training works. Labels never pick anything.

pub mod metrics;

use std::time::Instant;

use anyhow::{bail, Result};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::Serialize;

use crate::data::{Encoder, Matrix, RawTable, ScaleKind};
use crate::model::dense::Dev;
use crate::model::{Dagmm, DagmmConfig};
use crate::train::{fit_mixture, TrainConfig, Trainer};
pub use metrics::{evaluate, Detection};

/// What the protocol needs besides the data.
pub struct ProtocolOptions {
    /// The label value of the anomaly class.
    pub anomaly: String,
    pub runs: usize,
    /// Share of test rows to flag; `None` uses the whole file's anomaly ratio.
    pub contamination: Option<f64>,
    pub scale: ScaleKind,
    /// Run `r` uses seed `train.seed + r` for the split, the weights and the batches.
    pub train: TrainConfig,
    /// Independently initialised models per run whose standardised energies are averaged
    /// (1 = a single model). No labels involved: every member counts equally.
    pub restarts: usize,
}

/// One run of the protocol.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run: usize,
    pub seed: u64,
    /// The architecture trained (its input width is the encoded width of this split).
    pub model: DagmmConfig,
    /// Models averaged in this run.
    pub restarts: usize,
    pub train_rows: usize,
    pub test_rows: usize,
    /// Share of anomalies in the test half (F1 moves with it).
    pub test_anomaly_ratio: f64,
    /// Share of test rows flagged.
    pub contamination: f64,
    pub trained: Detection,
    /// Same split, same seed, epoch 0.
    pub untrained: Detection,
    pub epochs: usize,
    pub train_seconds: f64,
    pub samples_per_sec: f64,
    /// Mean training loss over the last epoch (what an unsupervised user can see).
    pub final_loss: f64,
}

/// Minimum, median and maximum over runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (NaN-free).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Self {
            min: v.first().copied().unwrap_or(f64::NAN),
            median,
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Spreads of the headline figures over all runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub precision: Spread,
    pub recall: Spread,
    pub f1: Spread,
    pub auroc: Spread,
    pub auprc: Spread,
    pub untrained_f1: Spread,
    pub untrained_auroc: Spread,
    pub train_seconds: Spread,
    pub samples_per_sec: Spread,
}

impl Summary {
    /// Summarises `runs`.
    pub fn of(runs: &[RunReport]) -> Self {
        let spread = |f: &dyn Fn(&RunReport) -> f64| Spread::of(runs.iter().map(f));
        Self {
            precision: spread(&|r| r.trained.precision),
            recall: spread(&|r| r.trained.recall),
            f1: spread(&|r| r.trained.f1),
            auroc: spread(&|r| r.trained.auroc),
            auprc: spread(&|r| r.trained.auprc),
            untrained_f1: spread(&|r| r.untrained.f1),
            untrained_auroc: spread(&|r| r.untrained.auroc),
            train_seconds: spread(&|r| r.train_seconds),
            samples_per_sec: spread(&|r| r.samples_per_sec),
        }
    }
}

/// Runs the protocol `opts.runs` times. `model_for(width)` gives the architecture for the
/// encoded width; `progress` receives one human-readable line per epoch and run.
pub fn run_protocol(
    table: &RawTable,
    opts: &ProtocolOptions,
    model_for: impl Fn(usize) -> DagmmConfig,
    mut progress: impl FnMut(&str),
) -> Result<Vec<RunReport>> {
    let Some(labels) = &table.labels else {
        bail!("eval needs --label COLUMN");
    };
    let is_anomaly = labels.is_value(&opts.anomaly).map_err(anyhow::Error::msg)?;
    let data_ratio = is_anomaly.iter().filter(|&&a| a).count() as f64 / is_anomaly.len() as f64;
    let contamination = opts.contamination.unwrap_or(data_ratio);
    if !(0.0..=1.0).contains(&contamination) {
        bail!("--contamination must be between 0 and 1, got {contamination}");
    }
    let mut reports = Vec::new();
    for run in 0..opts.runs {
        let seed = opts.train.seed + run as u64;
        let mut rows: Vec<usize> = (0..table.len()).collect();
        rows.shuffle(&mut StdRng::seed_from_u64(seed));
        let (train_half, test_half) = rows.split_at(rows.len() / 2);
        let train_rows: Vec<usize> = train_half
            .iter()
            .copied()
            .filter(|&r| !is_anomaly[r])
            .collect();
        if train_rows.len() < 2 || test_half.is_empty() {
            bail!("too few rows for a 50/50 split with normal training rows");
        }
        let truth: Vec<bool> = test_half.iter().map(|&r| is_anomaly[r]).collect();
        let (encoder, _) = Encoder::fit(table, &train_rows, opts.scale)?;
        let train_x = encoder.transform(table, &train_rows).matrix;
        let test_x = encoder.transform(table, test_half).matrix;
        let model_config = model_for(encoder.width());
        model_config.validate().map_err(anyhow::Error::msg)?;
        let config = TrainConfig {
            seed,
            ..opts.train.clone()
        };
        let (mut untrained_scores, mut trained_scores) = (Vec::new(), Vec::new());
        let started = Instant::now();
        let (mut samples, mut final_loss) = (0usize, 0f64);
        for member in 0..opts.restarts.max(1) {
            let member_config = TrainConfig {
                seed: config.seed + 1000 * member as u64,
                ..config.clone()
            };
            let mut trainer = Trainer::new(model_config.clone(), member_config, train_x.rows);
            untrained_scores.push(standardised_energies(
                &trainer.model,
                &trainer.dev,
                &train_x,
                &test_x,
            )?);
            let mut last = 0f64;
            for epoch in 1..=opts.train.epochs {
                let summary = trainer.epoch(&train_x, |_| true)?;
                samples += summary.samples;
                last = summary.loss.total;
                progress(&format!(
                    "run {}/{} seed {seed} model {}/{} epoch {epoch}/{} loss {:.4} (recon {:.4} energy {:.3} cov {:.3}) {:.0} samples/s",
                    run + 1,
                    opts.runs,
                    member + 1,
                    opts.restarts.max(1),
                    opts.train.epochs,
                    summary.loss.total,
                    summary.loss.reconstruction,
                    summary.loss.energy,
                    summary.loss.penalty,
                    summary.samples as f64 / summary.seconds.max(1e-9)
                ));
            }
            final_loss += last / opts.restarts.max(1) as f64;
            trained_scores.push(standardised_energies(
                &trainer.model,
                &trainer.dev,
                &train_x,
                &test_x,
            )?);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let untrained = evaluate(&average(&untrained_scores), &truth, contamination);
        let trained = evaluate(&average(&trained_scores), &truth, contamination);
        let report = RunReport {
            run: run + 1,
            seed,
            model: model_config.clone(),
            restarts: opts.restarts.max(1),
            train_rows: train_x.rows,
            test_rows: test_x.rows,
            test_anomaly_ratio: truth.iter().filter(|&&t| t).count() as f64 / truth.len() as f64,
            contamination,
            trained,
            untrained,
            epochs: opts.train.epochs,
            train_seconds,
            samples_per_sec: samples as f64 / train_seconds.max(1e-9),
            final_loss,
        };
        progress(&format!(
            "run {} seed {seed}: F1 {:.4} AUROC {:.4} (untrained F1 {:.4} AUROC {:.4}), test anomaly ratio {:.4}, {:.1} s",
            run + 1,
            trained.f1,
            trained.auroc,
            untrained.f1,
            untrained.auroc,
            report.test_anomaly_ratio,
            train_seconds
        ));
        reports.push(report);
    }
    Ok(reports)
}

/// Test energies of one model, standardised by the median and interquartile range of its
/// own training-row energies, so that members of an ensemble weigh the same.
fn standardised_energies(
    model: &Dagmm,
    dev: &Dev,
    train_x: &Matrix,
    test_x: &Matrix,
) -> Result<Vec<f64>> {
    let fit = fit_mixture(model, dev, train_x)?;
    let gmm = fit.gmm.factorise().map_err(anyhow::Error::msg)?;
    let mut reference = fit.energies;
    reference.sort_by(f64::total_cmp);
    let quantile = |q: f64| reference[((reference.len() - 1) as f64 * q).round() as usize];
    let (median, spread) = (quantile(0.5), (quantile(0.75) - quantile(0.25)).max(1e-12));
    Ok(model
        .energies(dev, test_x, &gmm)
        .into_iter()
        .map(|e| (e - median) / spread)
        .collect())
}

/// Element-wise mean of equally long score vectors.
fn average(members: &[Vec<f64>]) -> Vec<f64> {
    let n = members.len() as f64;
    (0..members[0].len())
        .map(|i| members.iter().map(|m| m[i]).sum::<f64>() / n)
        .collect()
}

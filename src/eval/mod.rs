//! Detection quality with honest bookkeeping, in two protocols:
//! - **paper** (Zong et al.): a random 50/50 split per run, training on the normal rows of
//!   the training half only, scoring the test half;
//! - **unsupervised** (the workbench's setting): fit on every row, anomalies included,
//!   and score every row.
//!
//! Each run reports AUROC, AUPRC and F1 at the true anomaly ratio of the scored rows, for
//! the trained ensemble, the same ensemble untrained (same seeds, epoch 0: an untrained
//! DAGMM already ranks well on some data, so only the gap shows that training works), and
//! an IsolationForest reference fitted on the same rows in the same run. Labels score the
//! result and never pick anything.

pub mod discovery;
pub mod metrics;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Result};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::Serialize;

use crate::data::{Encoder, RawTable, ScaleKind};
use crate::model::ensemble::mean_scores;
pub use crate::model::iforest::{self, IsolationForest};
use crate::model::DetectorConfig;
use crate::model::{Ensemble, Member};
use crate::train::feedback::FINE_TUNE_EVERY;
use crate::train::trainer::fine_tune_ensemble;
use crate::train::{member_of, FeedbackLayer, Marked, TrainConfig, Trainer};
pub use discovery::Discovery;
pub use metrics::{evaluate, Detection};

/// Trees in the IsolationForest reference (scikit-learn's default).
const REFERENCE_TREES: usize = 100;

/// Which rows train and which are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The paper's: train on the normal rows of a random half, score the other half.
    #[default]
    Paper,
    /// The workbench's: train on every row (anomalies included), score every row.
    Unsupervised,
}

/// What the protocol needs besides the data.
pub struct ProtocolOptions {
    pub protocol: Protocol,
    /// The label value of the anomaly class.
    pub anomaly: String,
    pub runs: usize,
    /// Unsupervised protocol: rows a simulated analyst marks from the top of the ranking
    /// before the ensemble refits (0: no simulation).
    pub feedback: usize,
    /// Share of scored rows to flag; `None` uses their true anomaly ratio.
    pub contamination: Option<f64>,
    /// Unsupervised protocol: the discovery loop's budgets (empty: no loop).
    pub discovery: Vec<usize>,
    /// Marks between two fine-tunes in the loop (`None`: the workbench's
    /// [`FINE_TUNE_EVERY`]; 0: never).
    pub fine_tune_every: Option<usize>,
    pub scale: ScaleKind,
    /// Run `r` uses seed `train.seed + r` for the split, the weights and the batches;
    /// `train.members` models per run form the ensemble.
    pub train: TrainConfig,
}

/// One run of the protocol.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run: usize,
    pub seed: u64,
    /// The architecture trained (its input width is the encoded width of the training rows).
    pub model: DetectorConfig,
    /// Models in the ensemble.
    pub members: usize,
    pub train_rows: usize,
    pub test_rows: usize,
    /// Share of anomalies among the scored rows (F1 moves with it).
    pub test_anomaly_ratio: f64,
    /// Share of scored rows flagged.
    pub contamination: f64,
    pub trained: Detection,
    /// Same rows, same seeds, epoch 0.
    pub untrained: Detection,
    /// IsolationForest (100 trees, seeded by the run) fitted on the same training rows.
    pub reference: Detection,
    /// The simulated analyst (unsupervised protocol with `feedback`).
    pub feedback: Option<Feedback>,
    /// The discovery loop (unsupervised protocol with `discovery`).
    pub discovery: Option<Discovery>,
    pub epochs: usize,
    pub train_seconds: f64,
    pub samples_per_sec: f64,
    /// Mean training loss over the last epoch (what an unsupervised user can see).
    pub final_loss: f64,
    /// Trained members that score by L_D alone although configured with α > 0 (EGBAD: a
    /// lost game or their fit's choice by the scores' tails); 0 for DAGMM.
    pub scored_by_discriminator: usize,
}

/// What a simulated analyst's marks did: the top rows were marked by their true label,
/// the rows marked anomalous left the scoring fit, and the ensemble refitted.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Feedback {
    /// Rows marked (the top of the ranking).
    pub marked: usize,
    /// Of those, marked anomalous (left out of the refit).
    pub marked_anomalies: usize,
    /// AUROC over the unmarked rows before and after the refit.
    pub auroc_before: f64,
    pub auroc_after: f64,
}

/// Marks the `n` top-ranked rows by their truth, refits `ensemble` without the anomalies
/// among them, and compares AUROC over the rows left unmarked.
fn simulate_analyst(
    ensemble: &mut Ensemble,
    x: &crate::data::Matrix,
    scores: &[f64],
    truth: &[bool],
    n: usize,
) -> Result<Feedback> {
    let top = crate::train::ranking(scores);
    let marked: Vec<usize> = top.iter().take(n).map(|&r| r as usize).collect();
    let mut keep = vec![true; truth.len()];
    let mut unmarked = vec![true; truth.len()];
    for &r in &marked {
        unmarked[r] = false;
        keep[r] = !truth[r];
    }
    let after = ensemble.refit(x, Some(&keep)).map_err(anyhow::Error::msg)?;
    let over_unmarked = |s: &[f64]| {
        let (s, t): (Vec<f64>, Vec<bool>) = s
            .iter()
            .zip(truth)
            .zip(&unmarked)
            .filter(|(_, &u)| u)
            .map(|((&s, &t), _)| (s, t))
            .unzip();
        metrics::auroc(&s, &t)
    };
    Ok(Feedback {
        marked: marked.len(),
        marked_anomalies: marked.iter().filter(|&&r| truth[r]).count(),
        auroc_before: over_unmarked(scores),
        auroc_after: over_unmarked(&after),
    })
}

/// Minimum, median and maximum over runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, NaN left out (an AUROC is NaN where no anomaly is left to
    /// rank); all NaN gives NaN.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
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
    pub untrained_auprc: Spread,
    pub reference_f1: Spread,
    pub reference_auroc: Spread,
    pub reference_auprc: Spread,
    /// AUROC over unmarked rows before and after the simulated analyst's refit.
    pub feedback_before: Spread,
    pub feedback_after: Spread,
    pub train_seconds: Spread,
    pub samples_per_sec: Spread,
    /// The discovery loop over runs: method → budget → spread of found@B (empty without).
    pub discovery: BTreeMap<String, BTreeMap<String, Spread>>,
    /// AUROC and AUPRC of the rows the loop left unmarked.
    pub discovery_unmarked_auroc: Spread,
    pub discovery_unmarked_auprc: Spread,
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
            untrained_auprc: spread(&|r| r.untrained.auprc),
            reference_f1: spread(&|r| r.reference.f1),
            reference_auroc: spread(&|r| r.reference.auroc),
            reference_auprc: spread(&|r| r.reference.auprc),
            feedback_before: spread(&|r| r.feedback.map_or(f64::NAN, |f| f.auroc_before)),
            feedback_after: spread(&|r| r.feedback.map_or(f64::NAN, |f| f.auroc_after)),
            train_seconds: spread(&|r| r.train_seconds),
            samples_per_sec: spread(&|r| r.samples_per_sec),
            discovery: discovery_spreads(runs),
            discovery_unmarked_auroc: spread(&|r| {
                r.discovery.as_ref().map_or(f64::NAN, |d| d.unmarked_auroc)
            }),
            discovery_unmarked_auprc: spread(&|r| {
                r.discovery.as_ref().map_or(f64::NAN, |d| d.unmarked_auprc)
            }),
        }
    }
}

/// The spread of every method's found@B over the runs that ran the loop.
fn discovery_spreads(runs: &[RunReport]) -> BTreeMap<String, BTreeMap<String, Spread>> {
    let Some(first) = runs.iter().find_map(|r| r.discovery.as_ref()) else {
        return BTreeMap::new();
    };
    first
        .found
        .iter()
        .map(|(method, budgets)| {
            let by_budget = budgets
                .keys()
                .map(|b| {
                    let values = runs
                        .iter()
                        .filter_map(|r| r.discovery.as_ref())
                        .filter_map(|d| d.found.get(method).and_then(|f| f.get(b)))
                        .map(|&v| v as f64);
                    (b.clone(), Spread::of(values))
                })
                .collect();
            (method.clone(), by_budget)
        })
        .collect()
}

/// Runs the protocol `opts.runs` times on `table`. `model_for(width)` gives the
/// architecture for the encoded width; `progress` receives one human-readable line per
/// epoch and run; `note` receives what the user should know about the data (dropped
/// constant columns), once, as `train` prints it.
pub fn run_protocol(
    table: &RawTable,
    opts: &ProtocolOptions,
    model_for: impl Fn(usize) -> DetectorConfig,
    mut progress: impl FnMut(&str),
    mut note: impl FnMut(&str),
) -> Result<Vec<RunReport>> {
    let Some(labels) = &table.labels else {
        bail!("eval needs --label COLUMN");
    };
    let is_anomaly = labels.is_value(&opts.anomaly).map_err(anyhow::Error::msg)?;
    if let Some(c) = opts.contamination {
        if !(0.0..=1.0).contains(&c) {
            bail!("--contamination must be between 0 and 1, got {c}");
        }
    }
    let members = opts.train.members.max(1);
    let mut reports = Vec::new();
    for run in 0..opts.runs {
        let seed = opts.train.seed + run as u64;
        let (train_rows, test_rows) = split(opts.protocol, &is_anomaly, seed);
        if train_rows.len() < 2 || test_rows.is_empty() {
            bail!("too few rows for a 50/50 split with normal training rows");
        }
        let truth: Vec<bool> = test_rows.iter().map(|&r| is_anomaly[r]).collect();
        let ratio = truth.iter().filter(|&&t| t).count() as f64 / truth.len() as f64;
        let contamination = opts.contamination.unwrap_or(ratio);
        let (encoder, notes) = Encoder::fit(table, &train_rows, opts.scale)?;
        if run == 0 {
            table.notes.iter().chain(&notes).for_each(|n| note(n));
        }
        let train_x = encoder.transform(table, &train_rows).matrix;
        let test_x = encoder.transform(table, &test_rows).matrix;
        let model_config = model_for(encoder.width());
        model_config.validate().map_err(anyhow::Error::msg)?;
        let config = TrainConfig {
            seed,
            ..opts.train.clone()
        };
        // A member's calibrated scores of the scored rows: in the unsupervised protocol
        // those are the rows its mixture was fitted on, already scored by the fit.
        let scored = |trainer: &Trainer| -> Result<(Member, Vec<f64>)> {
            let (member, fitted_rows, _) = member_of(trainer, &train_x, None)?;
            let scores = match opts.protocol {
                Protocol::Unsupervised => fitted_rows,
                Protocol::Paper => member.scores(&test_x),
            };
            Ok((member, scores))
        };
        let (mut untrained_scores, mut trained_scores) = (Vec::new(), Vec::new());
        let mut trained = Ensemble::default();
        let started = Instant::now();
        let (mut samples, mut final_loss) = (0usize, 0f64);
        for member_index in 0..members {
            let mut trainer = Trainer::new(
                model_config.clone(),
                config.member(member_index),
                train_x.rows,
            );
            untrained_scores.push(scored(&trainer)?.1);
            let mut last = 0f64;
            for epoch in 1..=config.epochs {
                let summary = trainer.epoch(&train_x, |_| true)?;
                samples += summary.samples;
                last = summary.losses.first().copied().unwrap_or(f64::NAN);
                let kind = model_config.kind();
                let losses: Vec<String> = kind
                    .loss_names()
                    .iter()
                    .zip(&summary.losses)
                    .map(|(name, v)| format!("{name} {v:.4}"))
                    .collect();
                let kept = match summary.criterion {
                    Some(c) => format!(" criterion {c:.4} keeping epoch {}", summary.kept_epoch),
                    None => String::new(),
                };
                let diverged = summary
                    .diverged
                    .as_ref()
                    .map(|d| format!(" DIVERGED: {d}"))
                    .unwrap_or_default();
                progress(&format!(
                    "run {}/{} seed {seed} model {}/{members} epoch {epoch}/{} {}{kept}{diverged} {:.0} samples/s",
                    run + 1,
                    opts.runs,
                    member_index + 1,
                    config.epochs,
                    losses.join(", "),
                    summary.samples as f64 / summary.seconds.max(1e-9)
                ));
            }
            final_loss += last / members as f64;
            let (member, scores) = scored(&trainer)?;
            if let Some(note) = member.detector.score_note() {
                progress(&format!(
                    "run {}/{} seed {seed} model {}/{members}: {note}",
                    run + 1,
                    opts.runs,
                    member_index + 1
                ));
            }
            trained.members.push(member);
            trained_scores.push(scores);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let trained_scores = mean_scores(&trained_scores);
        // The discovery loop starts from the ensemble as trained (the analyst simulation
        // below refits it).
        let mut tuned = trained.clone();
        let feedback = match (opts.protocol, opts.feedback) {
            (Protocol::Unsupervised, n) if n > 0 => Some(simulate_analyst(
                &mut trained,
                &train_x,
                &trained_scores,
                &truth,
                n,
            )?),
            _ => None,
        };
        let forest = IsolationForest::fit(&train_x, REFERENCE_TREES, seed);
        let forest_scores = forest.scores(&test_x);
        let discovery = match opts.protocol {
            Protocol::Unsupervised if !opts.discovery.is_empty() => {
                let layer = FeedbackLayer::new(&trained_scores, &train_x, seed);
                let fine_tune = |marks: &[(usize, bool)]| -> Result<Vec<f64>> {
                    fine_tune_ensemble(&mut tuned, &config, &train_x, &Marked::from_pairs(marks))
                };
                Some(discovery::discover(
                    layer,
                    &trained_scores,
                    &forest_scores,
                    &truth,
                    &opts.discovery,
                    opts.fine_tune_every.unwrap_or(FINE_TUNE_EVERY),
                    fine_tune,
                )?)
            }
            _ => None,
        };
        let report = RunReport {
            discovery,
            run: run + 1,
            seed,
            model: model_config.clone(),
            members,
            train_rows: train_x.rows,
            test_rows: test_x.rows,
            test_anomaly_ratio: ratio,
            contamination,
            trained: evaluate(&trained_scores, &truth, contamination),
            feedback,
            untrained: evaluate(&mean_scores(&untrained_scores), &truth, contamination),
            reference: evaluate(&forest_scores, &truth, contamination),
            epochs: config.epochs,
            train_seconds,
            samples_per_sec: samples as f64 / train_seconds.max(1e-9),
            final_loss,
            scored_by_discriminator: match &model_config {
                DetectorConfig::Egbad(asked) if asked.alpha > 0.0 => {
                    trained.by_discriminator().len()
                }
                _ => 0,
            },
        };
        progress(&format!(
            "run {} seed {seed}: F1 {:.4} AUROC {:.4} (untrained F1 {:.4} AUROC {:.4}; IsolationForest F1 {:.4} AUROC {:.4}), anomaly ratio {:.4}, {:.1} s",
            run + 1,
            report.trained.f1,
            report.trained.auroc,
            report.untrained.f1,
            report.untrained.auroc,
            report.reference.f1,
            report.reference.auroc,
            ratio,
            train_seconds
        ));
        reports.push(report);
    }
    Ok(reports)
}

/// One file's runs in `eval`.
#[derive(Debug, Serialize)]
pub struct FileReport {
    pub data: String,
    pub anomaly: String,
    pub rows: usize,
    pub train: TrainConfig,
    pub runs: Vec<RunReport>,
    pub summary: Summary,
}

/// Medians over files of each file's median over seeds, and how often DAGMM wins.
#[derive(Debug, Serialize)]
pub struct Overall {
    pub files: usize,
    pub auroc: f64,
    pub untrained_auroc: f64,
    pub reference_auroc: f64,
    pub auprc: f64,
    pub untrained_auprc: f64,
    pub reference_auprc: f64,
    pub f1: f64,
    pub reference_f1: f64,
    /// Files where the trained ensemble's median AUROC beats the untrained one's.
    pub trained_beats_untrained: usize,
    /// Files where the trained ensemble's median AUROC is at least IsolationForest's.
    pub trained_at_least_reference: usize,
}

impl Overall {
    /// The medians and counts over `reports`.
    pub fn of(reports: &[FileReport]) -> Self {
        let median =
            |f: &dyn Fn(&Summary) -> f64| Spread::of(reports.iter().map(|r| f(&r.summary))).median;
        let count = |f: &dyn Fn(&Summary) -> bool| reports.iter().filter(|r| f(&r.summary)).count();
        Self {
            files: reports.len(),
            auroc: median(&|s| s.auroc.median),
            untrained_auroc: median(&|s| s.untrained_auroc.median),
            reference_auroc: median(&|s| s.reference_auroc.median),
            auprc: median(&|s| s.auprc.median),
            untrained_auprc: median(&|s| s.untrained_auprc.median),
            reference_auprc: median(&|s| s.reference_auprc.median),
            f1: median(&|s| s.f1.median),
            reference_f1: median(&|s| s.reference_f1.median),
            trained_beats_untrained: count(&|s| s.auroc.median > s.untrained_auroc.median),
            trained_at_least_reference: count(&|s| s.auroc.median >= s.reference_auroc.median),
        }
    }
}

/// Training and scored rows of one run: the paper's split (normal rows of a random half;
/// the other half) or every row for both.
fn split(protocol: Protocol, is_anomaly: &[bool], seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rows: Vec<usize> = (0..is_anomaly.len()).collect();
    match protocol {
        Protocol::Unsupervised => (rows.clone(), rows),
        Protocol::Paper => {
            rows.shuffle(&mut StdRng::seed_from_u64(seed));
            let (train_half, test_half) = rows.split_at(rows.len() / 2);
            let train = train_half
                .iter()
                .copied()
                .filter(|&r| !is_anomaly[r])
                .collect();
            (train, test_half.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_leave_nan_out() {
        let s = Spread::of([0.9, f64::NAN, 0.7, 0.8]);
        assert_eq!((s.min, s.median, s.max), (0.7, 0.8, 0.9));
        assert!(Spread::of([f64::NAN]).median.is_nan());
        let even = Spread::of([1.0, 2.0]);
        assert_eq!(even.median, 1.5);
    }
}

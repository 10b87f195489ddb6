//! The training loop itself, independent of threads and of the detector: shuffled
//! mini-batches, one [`Network::step`] each, recovery from non-finite steps, and for
//! detectors that need it (EGBAD) the choice of the state kept by a label-free criterion
//! on rows held out of the batches.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Result;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::Matrix;
use crate::model::dense::Dev;
use crate::model::parallel::StepThreads;
#[cfg(test)]
use crate::model::Detector;
use crate::model::{BatchRoles, DetectorConfig, Member, Network, RowDetail, RowRole};

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Ensemble members, each trained from its own seed (see [`TrainConfig::member`]).
    #[serde(default = "one")]
    pub members: usize,
}

fn one() -> usize {
    1
}

impl TrainConfig {
    /// The settings of ensemble member `m` (0-based): its own seed, one model.
    pub fn member(&self, m: usize) -> TrainConfig {
        TrainConfig {
            seed: self.seed.wrapping_add(1000 * m as u64),
            members: 1,
            ..self.clone()
        }
    }
}

impl Default for TrainConfig {
    /// The paper's KDDCUP settings, 20 epochs (the CLI picks epochs by [`default_epochs`]).
    fn default() -> Self {
        Self {
            epochs: 20,
            batch: 1024,
            lr: 1e-4,
            seed: 0,
            members: 1,
        }
    }
}

/// What one epoch produced.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSummary {
    /// Mean loss components over the applied steps (named by the detector's kind).
    pub losses: Vec<f64>,
    /// Mean of the auxiliary series (DAGMM: φ̂; empty when the detector has none).
    pub aux: Vec<f64>,
    pub samples: usize,
    pub seconds: f64,
    /// Steps dropped because their loss or update was not finite.
    pub dropped_steps: usize,
    /// Largest numerical repair a step needed (DAGMM: covariance jitter; 0 when none).
    pub max_repair: f64,
    /// Why the detector's training looks diverged (EGBAD: D wins outright), if it does.
    pub diverged: Option<String>,
    /// The selection criterion on the held-out rows after this epoch, when the detector has one.
    pub criterion: Option<f64>,
    /// The epoch whose state is kept (the best by the criterion so far; this one without).
    pub kept_epoch: usize,
}

/// Ensemble members trained by default.
pub const DEFAULT_MEMBERS: usize = 5;

/// Default epoch count for `rows` training rows: the fewest whole epochs that give at
/// least `min_steps` optimisation steps (at least one epoch; each detector has its own
/// default, [`crate::model::DetectorKind::default_min_steps`]).
pub fn default_epochs(rows: usize, batch: usize, min_steps: usize) -> usize {
    let steps_per_epoch = rows.div_ceil(batch.max(1)).max(1);
    min_steps.div_ceil(steps_per_epoch).max(1)
}

/// Rows held out of the batches for the selection criterion: one in twenty, at most this many.
const MAX_HELD_OUT: usize = 2048;
/// Training rows on which DAGMM's separation criterion chooses the state kept, at most.
const MAX_PROBE: usize = 4096;
/// Marked rows added to every batch, at most (a rotating window when there are more).
const MAX_MARKED_PER_BATCH: usize = 256;
/// Share of the training steps with no trimming (the model first learns the bulk), and
/// the share over which the trimmed share then ramps up to its full value.
const TRIM_WARMUP: f64 = 0.25;
const TRIM_RAMP: f64 = 0.25;

/// The analyst's marks as training sees them, shared with the worker so that a mark
/// reaches the next step, not the next epoch.
#[derive(Debug, Clone, Default)]
pub struct SharedRoles(Arc<RwLock<Roles>>);

/// Every row's role and the marked rows among them.
#[derive(Debug, Default)]
struct Roles {
    /// One per data row; empty: every row unknown.
    of_row: Vec<RowRole>,
    marked: Vec<usize>,
}

impl SharedRoles {
    /// Replaces every row's role (empty: all unknown).
    pub fn set(&self, roles: Vec<RowRole>) {
        let marked = (0..roles.len())
            .filter(|&r| roles[r] != RowRole::Unknown)
            .collect();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Roles {
            of_row: roles,
            marked,
        };
    }

    /// The roles of `rows` rows with `marked`'s marks.
    pub fn set_marks(&self, rows: usize, marked: &super::Marked) {
        let mut roles = vec![RowRole::Unknown; rows];
        for (r, anomalous) in marked.pairs() {
            if let Some(role) = roles.get_mut(r) {
                *role = if anomalous {
                    RowRole::MarkedAnomaly
                } else {
                    RowRole::MarkedNormal
                };
            }
        }
        self.set(roles);
    }

    /// How many rows are marked.
    pub fn marked(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .marked
            .len()
    }
}

/// Networks, optimisers and data order: everything needed to resume training where it stopped.
pub struct Trainer {
    pub dev: Dev,
    pub network: Network,
    pub config: TrainConfig,
    rng: StdRng,
    /// Rows trained on, shuffled every epoch.
    order: Vec<usize>,
    /// Rows kept out of the batches to choose the state kept (empty when the detector
    /// keeps its last state).
    held_out: Vec<usize>,
    /// Rows (still trained on) on which DAGMM's separation criterion is measured.
    probe: Vec<usize>,
    /// The best state by the criterion so far: its value, its epoch and the networks.
    best: Option<(f64, usize, Network)>,
    pub epochs_done: usize,
    /// The threads a step's batch is split over (as many as the current rayon pool has).
    threads: StepThreads,
    /// Every row's role (marked rows join every batch; see [`crate::model::roles`]).
    roles: SharedRoles,
    /// Steps taken so far, for the trimming schedule.
    steps_done: usize,
}

/// The trainer as seen between two steps of an epoch.
pub struct StepView<'a> {
    /// 0-based step within the epoch.
    pub step: usize,
    /// Mean loss components over the epoch's applied steps so far.
    pub losses: Vec<f64>,
    /// The networks a member would be made of now (the kept state, see [`Trainer::kept`]).
    pub network: &'a Network,
    pub dev: &'a Dev,
    pub config: &'a TrainConfig,
    /// Epochs completed before this one.
    pub epochs_done: usize,
}

impl Trainer {
    /// A trainer with freshly initialised networks; everything random derives from `config.seed`.
    pub fn new(detector: DetectorConfig, config: TrainConfig, rows: usize) -> Self {
        let dev = Dev::seed_from_u64(config.seed);
        let network = Network::new(&detector, &dev, config.seed, config.lr);
        let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(0x5eed));
        let mut held_out = Vec::new();
        if network.selects_state() && rows >= 100 {
            let mut all: Vec<usize> = (0..rows).collect();
            all.shuffle(&mut rng);
            held_out = all[..(rows / 20).min(MAX_HELD_OUT)].to_vec();
            held_out.sort_unstable();
        }
        let mut probe = Vec::new();
        let selects_length = matches!(&detector, DetectorConfig::Dagmm(c) if c.select_length);
        if selects_length && rows >= 100 {
            let mut all: Vec<usize> = (0..rows).collect();
            all.shuffle(&mut rng);
            probe = all[..rows.min(MAX_PROBE)].to_vec();
        }
        let mut trainer = Self {
            rng,
            order: Vec::new(),
            probe,
            held_out,
            best: None,
            threads: StepThreads::new(rayon::current_num_threads(), config.seed)
                .expect("starting the step threads"),
            dev,
            network,
            config,
            epochs_done: 0,
            roles: SharedRoles::default(),
            steps_done: 0,
        };
        trainer.order = (0..rows)
            .filter(|r| trainer.held_out.binary_search(r).is_err())
            .collect();
        trainer
    }

    /// Trains `steps` more steps from the current weights (whole epochs of the shuffled
    /// rows, cut at `steps`) with the current roles and the full trimmed share: how marks
    /// made after training teach the networks without a restart.
    pub fn fine_tune(&mut self, data: &Matrix, steps: usize) -> Result<()> {
        let mut taken = 0;
        while taken < steps {
            self.epoch(data, |_| {
                taken += 1;
                taken < steps
            })?;
        }
        Ok(())
    }

    /// The roles this trainer reads before every step (set them through the handle).
    pub fn roles(&self) -> &SharedRoles {
        &self.roles
    }

    /// Trains with `roles`' marks from the next step on (a worker shares one handle
    /// across the members it trains).
    pub fn share_roles(&mut self, roles: SharedRoles) {
        self.roles = roles;
    }

    /// The share of unknown rows trimmed at the next step: none while warming up, then
    /// ramping to the detector's share; full once the planned epochs are done (fine-tuning).
    fn trim_now(&self) -> f64 {
        let DetectorConfig::Dagmm(c) = self.network.config() else {
            return 0.0;
        };
        let planned = (self.config.epochs * self.steps_per_epoch()).max(1) as f64;
        let progress = self.steps_done as f64 / planned;
        c.trim * ((progress - TRIM_WARMUP) / TRIM_RAMP).clamp(0.0, 1.0)
    }

    /// `rows` of a batch without the marked ones, then the marked rows (a rotating window
    /// of at most [`MAX_MARKED_PER_BATCH`]), with each row's role.
    fn batch_with_roles(&self, rows: &[usize], step: usize) -> (Vec<usize>, Vec<RowRole>) {
        let roles = self.roles.0.read().unwrap_or_else(|e| e.into_inner());
        let role = |r: usize| roles.of_row.get(r).copied().unwrap_or_default();
        let mut batch: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&r| role(r) == RowRole::Unknown)
            .collect();
        // Rows held out for the state criterion stay out, marked or not.
        let held = &self.held_out;
        let marked: Vec<usize> = roles
            .marked
            .iter()
            .copied()
            .filter(|r| held.binary_search(r).is_err())
            .collect();
        let take = marked.len().min(MAX_MARKED_PER_BATCH);
        let start = (step * take) % marked.len().max(1);
        batch.extend((0..take).map(|j| marked[(start + j) % marked.len()]));
        let batch_roles = batch.iter().map(|&r| role(r)).collect();
        (batch, batch_roles)
    }

    /// A trainer that goes on from `member`'s fitted networks (fresh optimisers), counted as
    /// having done its planned `config.epochs` (so trimming runs at its full share).
    pub fn resume(member: &Member, config: TrainConfig, rows: usize) -> Self {
        let mut trainer = Trainer::new(member.detector.config(), config, rows);
        trainer.network = Network::resume(&member.detector, trainer.config.lr);
        trainer.epochs_done = trainer.config.epochs;
        trainer.steps_done = trainer.config.epochs * trainer.steps_per_epoch();
        trainer
    }

    /// The networks a member is made of: the best state by the detector's criterion,
    /// or the current one when it has none (or before the first epoch).
    pub fn kept(&self) -> &Network {
        self.best.as_ref().map_or(&self.network, |(_, _, n)| n)
    }

    /// The trainer between epochs, as [`Trainer::epoch`] shows it between steps.
    pub fn view(&self) -> StepView<'_> {
        StepView {
            step: 0,
            losses: Vec::new(),
            network: self.kept(),
            dev: &self.dev,
            config: &self.config,
            epochs_done: self.epochs_done,
        }
    }

    /// Batches per epoch over the rows trained on.
    pub fn steps_per_epoch(&self) -> usize {
        let full = self.order.len() / self.config.batch;
        let rest = self.order.len() % self.config.batch;
        full + usize::from(rest >= self.network.config().min_batch() || full == 0)
    }

    /// Runs one epoch over `data`. `between_steps` is called after every step with the
    /// running loss and the current networks (so the worker can save or rescore mid-epoch),
    /// and may return `false` to stop the epoch early.
    pub fn epoch(
        &mut self,
        data: &Matrix,
        mut between_steps: impl FnMut(&StepView<'_>) -> bool,
    ) -> Result<EpochSummary> {
        let started = Instant::now();
        if self.epochs_done == 0 && self.best.is_none() && !self.probe.is_empty() {
            // The untrained state is a candidate too.
            if let Some(c) = separation(&self.network, &self.dev, &data.gather(&self.probe)) {
                self.best = Some((c, 0, self.network.clone()));
            }
        }
        self.order.shuffle(&mut self.rng);
        let mut sum: Vec<f64> = Vec::new();
        let mut aux: Vec<f64> = Vec::new();
        let (mut applied, mut samples, mut dropped, mut max_repair) =
            (0usize, 0usize, 0usize, 0f64);
        let steps = self.steps_per_epoch();
        let order = std::mem::take(&mut self.order);
        for (step, rows) in order.chunks(self.config.batch).take(steps).enumerate() {
            let (rows, roles) = self.batch_with_roles(rows, self.steps_done);
            let batch_roles = BatchRoles {
                roles: &roles,
                trim: self.trim_now(),
            };
            self.steps_done += 1;
            let stepped =
                self.network
                    .step(&self.dev, data.gather(&rows), batch_roles, &self.threads)?;
            match stepped {
                Some(report) => {
                    applied += 1;
                    samples += rows.len();
                    add_into(&mut sum, &report.losses);
                    add_into(&mut aux, &report.aux);
                    max_repair = max_repair.max(report.repair.unwrap_or(0.0));
                }
                None => dropped += 1,
            }
            let view = StepView {
                step,
                losses: mean(&sum, applied),
                network: self.best.as_ref().map_or(&self.network, |(_, _, n)| n),
                dev: &self.dev,
                config: &self.config,
                epochs_done: self.epochs_done,
            };
            if !between_steps(&view) {
                break;
            }
        }
        self.order = order;
        if applied == 0 && dropped > 0 {
            // Nothing was learnt and nothing will be: a checkpoint of it would only mislead.
            anyhow::bail!(
                "all {dropped} training steps of epoch {} gave a loss or update that is not a finite number; \
                 nothing was learnt (check the data's scale and the λ, ε and learning-rate settings)",
                self.epochs_done + 1
            );
        }
        self.epochs_done += 1;
        let losses = mean(&sum, applied);
        let criterion = if self.probe.is_empty() {
            self.network
                .criterion(&self.dev, &data.gather(&self.held_out))
                .filter(|_| !self.held_out.is_empty() && applied > 0)
        } else {
            separation(&self.network, &self.dev, &data.gather(&self.probe))
        };
        if let Some(c) = criterion.filter(|c| c.is_finite()) {
            if self.best.as_ref().is_none_or(|(best, _, _)| c < *best) {
                self.best = Some((c, self.epochs_done, self.network.clone()));
            }
        }
        let diverged = (applied > 0)
            .then(|| self.network.diverged(&losses))
            .flatten();
        if diverged.is_some() {
            // The game is lost: this member scores by what still carries signal, whichever
            // of its states is kept.
            self.network.score_by_discriminator();
            if let Some((_, _, kept)) = self.best.as_mut() {
                kept.score_by_discriminator();
            }
        }
        Ok(EpochSummary {
            aux: mean(&aux, applied),
            losses,
            samples,
            seconds: started.elapsed().as_secs_f64(),
            dropped_steps: dropped,
            max_repair,
            diverged,
            criterion,
            kept_epoch: self.best.as_ref().map_or(self.epochs_done, |(_, e, _)| *e),
        })
    }
}

/// How clearly DAGMM's scores of `rows` split into a bulk and a far group (lower: clearer),
/// the label-free stopping signal of ODIM's kind: minus the mean energy of the top 5 %, in
/// units of the interquartile range from the median (a member's calibration).
fn separation(network: &Network, dev: &Dev, rows: &Matrix) -> Option<f64> {
    let fit = network.fit(dev, rows, None).ok()?;
    let cal = crate::model::Calibration::fit(&fit.raw);
    let mut z: Vec<f64> = fit.raw.iter().map(|&r| cal.apply(r)).collect();
    z.sort_by(|a, b| b.total_cmp(a));
    let top = (z.len() / 20).max(1);
    Some(-z[..top].iter().sum::<f64>() / top as f64)
}

/// Adds `values` element-wise into `sum` (which takes their length when empty).
fn add_into(sum: &mut Vec<f64>, values: &[f64]) {
    if sum.is_empty() {
        sum.resize(values.len(), 0.0);
    }
    sum.iter_mut().zip(values).for_each(|(s, v)| *s += v);
}

fn mean(sum: &[f64], count: usize) -> Vec<f64> {
    let n = count.max(1) as f64;
    sum.iter().map(|s| s / n).collect()
}

/// Fine-tunes every member of `ensemble` from its current weights with `marks` (as roles)
/// for [`super::feedback::FINE_TUNE_STEPS`] steps, refits each over the rows not marked
/// anomalous, and returns the ensemble's new scores: how the workbench, and the discovery
/// harness like it, teach the networks after training.
pub fn fine_tune_ensemble(
    ensemble: &mut crate::model::Ensemble,
    train: &TrainConfig,
    data: &Matrix,
    marks: &super::Marked,
) -> Result<Vec<f64>> {
    let keep = marks.keep(data.rows);
    let mut calibrated = Vec::with_capacity(ensemble.members.len());
    for (i, member) in ensemble.members.iter_mut().enumerate() {
        let mut trainer = Trainer::resume(member, train.member(i), data.rows);
        trainer.roles().set_marks(data.rows, marks);
        trainer.fine_tune(data, super::feedback::FINE_TUNE_STEPS)?;
        let (tuned, scores, _) = member_of(&trainer, data, keep.as_deref())?;
        *member = tuned;
        calibrated.push(scores);
    }
    Ok(crate::model::ensemble::mean_scores(&calibrated))
}

/// The trainer's kept networks as an ensemble member (see [`StepView::member_of`]).
pub fn member_of(
    trainer: &Trainer,
    data: &Matrix,
    keep: Option<&[bool]>,
) -> Result<(Member, Vec<f64>, RowDetail)> {
    trainer.view().member_of(data, keep)
}

impl StepView<'_> {
    /// The networks of the moment as an ensemble member: fitted (DAGMM: its mixture) over
    /// the rows of `data` that `keep` allows and calibrated over those rows' raw scores.
    /// Also returns every row's calibrated score and per-row detail.
    pub fn member_of(
        &self,
        data: &Matrix,
        keep: Option<&[bool]>,
    ) -> Result<(Member, Vec<f64>, RowDetail)> {
        let fit = self
            .network
            .fit(self.dev, data, keep)
            .map_err(anyhow::Error::msg)?;
        Ok(Member::new(fit, keep, self.config.seed, self.epochs_done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dense::snapshot;
    use crate::model::{DagmmConfig, EgbadConfig};

    /// `rows × cols` values spread over [0, 1) without a pattern a model could latch onto.
    fn spread_rows(rows: usize, cols: usize) -> Matrix {
        Matrix {
            rows,
            cols,
            data: (0..rows * cols)
                .map(|i| ((i * 37 % 101) as f32) / 101.0)
                .collect(),
        }
    }

    fn dagmm(input: usize) -> DetectorConfig {
        DetectorConfig::Dagmm(DagmmConfig::default_for(input))
    }

    /// The percentile of `scores[row]` among `scores` (0 = lowest, 1 = highest).
    fn percentile(scores: &[f64], row: usize) -> f64 {
        scores.iter().filter(|&&s| s < scores[row]).count() as f64 / scores.len() as f64
    }

    #[test]
    fn a_fine_tune_lifts_a_marked_anomaly_and_its_unmarked_near_copy() {
        // 600 rows on a curve in 6-d; rows 300 and 301 are near-copies of each other.
        let rows = 600;
        let mut data = Vec::with_capacity(rows * 6);
        for r in 0..rows {
            let t = r as f32 / rows as f32;
            let t = if r == 301 {
                300.0 / rows as f32 + 1e-4
            } else {
                t
            };
            data.extend((0..6).map(|c| ((t * (c + 1) as f32 * 2.3).sin() + 1.0) / 2.0));
        }
        let data = Matrix {
            rows,
            cols: 6,
            data,
        };
        let config = TrainConfig {
            epochs: 20,
            batch: 128,
            lr: 1e-4,
            seed: 3,
            members: 1,
        };
        let mut trainer = Trainer::new(dagmm(6), config, rows);
        for _ in 0..20 {
            trainer.epoch(&data, |_| true).unwrap();
        }
        let (_, before, _) = member_of(&trainer, &data, None).unwrap();
        let mut roles = vec![RowRole::Unknown; rows];
        roles[300] = RowRole::MarkedAnomaly;
        trainer.roles().set(roles);
        trainer.fine_tune(&data, 200).unwrap();
        let mut keep = vec![true; rows];
        keep[300] = false;
        let (_, after, _) = member_of(&trainer, &data, Some(&keep)).unwrap();
        for row in [300, 301] {
            let (was, now) = (percentile(&before, row), percentile(&after, row));
            // The network's push is gentle at the default learning rate (the feedback layer
            // does the strong lifting); it must still go the right way, for the look-alike too.
            assert!(
                now > was + 0.05,
                "row {row}: percentile {was:.3} → {now:.3}"
            );
        }
    }

    #[test]
    fn dagmm_keeps_the_state_whose_scores_separate_most_clearly_the_untrained_one_included() {
        let rows = 300;
        let data = spread_rows(rows, 5);
        let config = TrainConfig {
            epochs: 3,
            batch: 64,
            lr: 1e-3,
            seed: 1,
            members: 1,
        };
        let mut trainer = Trainer::new(dagmm(5), config.clone(), rows);
        let probe = data.gather(&trainer.probe);
        let untrained = separation(&trainer.network, &trainer.dev, &probe).unwrap();
        let mut seen = vec![(untrained, 0)];
        for epoch in 1..=3 {
            let summary = trainer.epoch(&data, |_| true).unwrap();
            seen.push((summary.criterion.expect("DAGMM measures it"), epoch));
            assert_eq!(summary.kept_epoch, trainer.best.as_ref().unwrap().1);
        }
        let best = seen
            .iter()
            .copied()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap();
        assert_eq!(trainer.best.as_ref().map(|(c, e, _)| (*c, *e)), Some(best));
        // Without the choice the last state is kept and nothing is measured.
        let DetectorConfig::Dagmm(mut last) = dagmm(5) else {
            unreachable!()
        };
        last.select_length = false;
        let mut trainer = Trainer::new(DetectorConfig::Dagmm(last), config, rows);
        assert!(trainer.epoch(&data, |_| true).unwrap().criterion.is_none());
        assert!(trainer.best.is_none());
    }

    #[test]
    fn default_epochs_give_about_the_step_budget() {
        assert_eq!(default_epochs(494_021, 1024, 200), 1);
        assert_eq!(default_epochs(49_097, 1024, 200), 5);
        assert_eq!(default_epochs(5_011, 1024, 200), 40);
        assert_eq!(default_epochs(10, 1024, 200), 200);
    }

    #[test]
    fn a_row_marked_anomalous_joins_every_batch_and_leaves_the_fit() {
        let rows = 40;
        let mut data = spread_rows(rows, 4);
        let config = TrainConfig {
            epochs: 1,
            // 39 kept rows: three full batches, no partial one to drop.
            batch: 13,
            lr: 1e-3,
            seed: 0,
            members: 1,
        };
        let mut trainer = Trainer::new(dagmm(4), config, rows);
        let mut keep = vec![true; rows];
        keep[5] = false;
        trainer
            .roles()
            .set_marks(rows, &crate::train::Marked::anomalies(vec![5]));
        assert_eq!(trainer.roles().marked(), 1);
        for _ in 0..3 {
            let summary = trainer.epoch(&data, |_| true).unwrap();
            // Three batches of 13 (row 5 taken out of its own), each with row 5 added.
            assert_eq!((summary.dropped_steps, summary.samples), (0, 3 * 13 + 2));
        }
        // The mixture over the kept rows is the mixture of the data without row 5.
        data.data[5 * 4] = 100.0;
        let (member, scores, _) = member_of(&trainer, &data, Some(&keep)).unwrap();
        let others: Vec<usize> = (0..rows).filter(|&r| r != 5).collect();
        let (alone, _, _) = member_of(&trainer, &data.gather(&others), None).unwrap();
        assert_eq!(scores.len(), rows, "every row is still scored");
        assert_eq!(member.calibration, alone.calibration);
        let (Detector::Dagmm(with_row), Detector::Dagmm(without)) =
            (&member.detector, &alone.detector)
        else {
            panic!("DAGMM members");
        };
        assert_eq!(with_row.gmm, without.gmm);
    }

    /// Both detectors: a step whose loss is not finite changes nothing, with no copy to roll
    /// back to (the step stops before Adam; Adam's own refusal of unsafe gradients is tested
    /// in `model::dense`).
    #[test]
    fn non_finite_steps_are_dropped_and_weights_stay_untouched() {
        let rows = 64;
        let data = Matrix {
            rows,
            cols: 6,
            data: (0..rows * 6)
                .map(|i| if i % 7 == 0 { f32::NAN } else { 0.5 })
                .collect(),
        };
        let config = TrainConfig {
            epochs: 1,
            batch: 32,
            lr: 1e-3,
            seed: 0,
            members: 1,
        };
        for detector in [dagmm(6), DetectorConfig::Egbad(EgbadConfig::default_for(6))] {
            let kind = detector.kind();
            let mut trainer = Trainer::new(detector, config.clone(), rows);
            let before = snapshot(&mut trainer.network);
            // Every step dropped: the epoch fails rather than hand on a model that learnt nothing.
            let err = trainer
                .epoch(&data, |_| true)
                .expect_err("nothing was learnt");
            assert!(
                err.to_string().contains("all 2 training steps"),
                "{kind}: {err}"
            );
            assert_eq!(snapshot(&mut trainer.network), before, "{kind}");
        }
    }

    #[test]
    fn egbad_keeps_the_state_with_the_best_held_out_reconstruction() {
        let rows = 400;
        let data = spread_rows(rows, 5);
        let config = TrainConfig {
            epochs: 1,
            batch: 64,
            lr: 1e-3,
            seed: 0,
            members: 1,
        };
        let mut trainer = Trainer::new(
            DetectorConfig::Egbad(EgbadConfig::default_for(5)),
            config,
            rows,
        );
        assert_eq!(trainer.held_out.len(), 20, "one row in twenty is held out");
        let mut best = f64::INFINITY;
        for _ in 0..4 {
            let summary = trainer.epoch(&data, |_| true).unwrap();
            let c = summary.criterion.expect("EGBAD has a criterion");
            assert_eq!(summary.losses.len(), 4);
            if c < best {
                best = c;
                assert_eq!(summary.kept_epoch, trainer.epochs_done);
            }
            assert!(summary.kept_epoch <= trainer.epochs_done);
        }
        // The kept networks are the ones that reached the best criterion.
        let held = data.gather(&trainer.held_out);
        assert_eq!(trainer.kept().criterion(&trainer.dev, &held), Some(best));
    }
}

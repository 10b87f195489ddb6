//! Checkpoints: an ensemble's weights (one safetensors file, tensors named `member{i}.…`)
//! plus everything needed to score new data the same way — encoder (schema, scaler,
//! levels), read options, training settings, and per member its detector (architecture and
//! the mixture fitted over the training rows, for DAGMM), seed and score calibration.
//! Written atomically.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::trainer::TrainConfig;
use crate::data::{Encoder, ReadOptions};
use crate::files::StagedFile;
use crate::hash::fnv1a;
use crate::model::dense::{load_safetensors, safetensors_bytes};
use crate::model::{Calibration, Detector, DetectorKind, Ensemble, FittedMeta, Member};

/// Identifies the checkpoint layout; bumped when it changes (4: EGBAD members).
pub const FORMAT: &str = "dagmm-tui-checkpoint/4";
const WEIGHTS: &str = "model.safetensors";
const META: &str = "model.json";
/// Key in `model.json` holding the FNV-1a of the weights file: the two files are renamed
/// one after the other, so a crash in between (or files copied from two checkpoints)
/// would otherwise pair weights with the wrong mixture without a word.
const WEIGHTS_HASH: &str = "weights_fnv1a";

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub read: ReadOptions,
    pub encoder: Encoder,
    /// The settings the ensemble was trained with (each member's seed is recorded below).
    pub train: TrainConfig,
    pub members: Vec<MemberMeta>,
}

/// One ensemble member as recorded in `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberMeta {
    pub seed: u64,
    pub epochs_done: usize,
    pub calibration: Calibration,
    /// The detector's name, architecture and fitted state (DAGMM: the mixture).
    #[serde(flatten)]
    pub detector: FittedMeta,
}

impl CheckpointMeta {
    /// The metadata of `ensemble` trained with `train` on data read and encoded as given.
    pub fn new(
        ensemble: &Ensemble,
        train: &TrainConfig,
        read: &ReadOptions,
        encoder: &Encoder,
    ) -> Self {
        let members = ensemble
            .members
            .iter()
            .map(|m| MemberMeta {
                seed: m.seed,
                epochs_done: m.epochs_done,
                calibration: m.calibration,
                detector: m.detector.meta(),
            })
            .collect();
        Self {
            format: FORMAT.to_string(),
            read: read.clone(),
            encoder: encoder.clone(),
            train: train.clone(),
            members,
        }
    }
}

/// A loaded checkpoint: ready to score.
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub ensemble: Ensemble,
}

/// Writes `ensemble` and `meta` into `dir` (created if needed); each file goes through a
/// temporary name and a rename, so a crash never leaves a half-written checkpoint file.
pub fn save(dir: &Path, ensemble: &Ensemble, meta: &CheckpointMeta) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let weights = safetensors_bytes(&mut ensemble.clone())?;
    let staged_weights = StagedFile::bytes(&dir.join(WEIGHTS), &weights)?;
    let mut value = serde_json::to_value(meta)?;
    value[WEIGHTS_HASH] = format!("{:016x}", fnv1a(&weights)).into();
    let staged_meta = StagedFile::bytes(&dir.join(META), &serde_json::to_vec_pretty(&value)?)?;
    staged_weights.commit()?;
    staged_meta.commit()
}

impl CheckpointMeta {
    /// The detector of the checkpoint's members.
    pub fn detector(&self) -> Option<DetectorKind> {
        self.members.first().map(|m| m.detector.kind())
    }
}

/// Reads a checkpoint written by [`save`] and checks it holds `expected` when given: a
/// checkpoint of another detector is refused by name.
pub fn load_expecting(dir: &Path, expected: Option<DetectorKind>) -> Result<Checkpoint> {
    let checkpoint = load(dir)?;
    if let (Some(expected), Some(found)) = (expected, checkpoint.meta.detector()) {
        if expected != found {
            bail!(
                "{} holds {found} models, not {expected} (drop --detector, or pass --detector {})",
                dir.display(),
                found.name()
            );
        }
    }
    Ok(checkpoint)
}

/// Where the checkpoint of one of several detectors trained side by side goes: a
/// subdirectory of `dir` named by the detector (`dir/dagmm`, `dir/egbad`).
pub fn side_by_side_dir(dir: &Path, kind: DetectorKind) -> PathBuf {
    dir.join(kind.name())
}

/// Reads the checkpoint in `dir`, or, when `dir` holds side-by-side checkpoints (see
/// [`side_by_side_dir`]), each of them. `expected` detectors (empty: any) must all be
/// there, and nothing else is loaded.
pub fn load_all(dir: &Path, expected: &[DetectorKind]) -> Result<Vec<Checkpoint>> {
    if dir.join(META).exists() || !dir.is_dir() {
        let only = match expected {
            [] => None,
            [one] => Some(*one),
            _ => bail!(
                "{} holds one detector's models, not {} side by side",
                dir.display(),
                expected.len()
            ),
        };
        return Ok(vec![load_expecting(dir, only)?]);
    }
    let mut found = Vec::new();
    for kind in DetectorKind::ALL {
        let sub = side_by_side_dir(dir, kind);
        let wanted = expected.is_empty() || expected.contains(&kind);
        if wanted && sub.join(META).exists() {
            found.push(load_expecting(&sub, Some(kind))?);
        } else if wanted && !expected.is_empty() {
            bail!("{} holds no {kind} checkpoint", dir.display());
        }
    }
    if found.is_empty() {
        bail!(
            "{} is not a checkpoint directory (no {META}, nor dagmm/ or egbad/ checkpoints)",
            dir.display()
        );
    }
    Ok(found)
}

/// Reads a checkpoint written by [`save`].
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let meta_path: PathBuf = dir.join(META);
    let text = fs::read_to_string(&meta_path).with_context(|| {
        format!(
            "{} is not a checkpoint directory (no {META})",
            dir.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not valid JSON (truncated or damaged)",
            meta_path.display()
        )
    })?;
    let format = value
        .get("format")
        .and_then(|f| f.as_str())
        .unwrap_or("unknown");
    if format != FORMAT {
        bail!(
            "{}: checkpoint format '{format}', this build reads '{FORMAT}'",
            meta_path.display()
        );
    }
    let expected_hash = value
        .get(WEIGHTS_HASH)
        .and_then(|h| h.as_str())
        .map(str::to_string);
    let meta: CheckpointMeta = serde_json::from_value(value)
        .with_context(|| format!("{}: malformed checkpoint", meta_path.display()))?;
    if meta.members.is_empty() {
        bail!("{}: the checkpoint holds no model", meta_path.display());
    }
    let weights_path = dir.join(WEIGHTS);
    let weights =
        fs::read(&weights_path).with_context(|| format!("reading {}", weights_path.display()))?;
    if expected_hash != Some(format!("{:016x}", fnv1a(&weights))) {
        bail!(
            "{} does not match {}: truncated, damaged, or from another checkpoint",
            weights_path.display(),
            meta_path.display()
        );
    }
    let mut members = Vec::new();
    for (i, m) in meta.members.iter().enumerate() {
        if m.detector.config().input() != meta.encoder.width() {
            bail!(
                "{}: member {} input width does not match the encoder",
                meta_path.display(),
                i + 1
            );
        }
        let detector = Detector::from_meta(&m.detector, m.seed)
            .map_err(|e| anyhow::anyhow!("{}: member {}: {e}", meta_path.display(), i + 1))?;
        members.push(Member {
            detector,
            calibration: m.calibration,
            seed: m.seed,
            epochs_done: m.epochs_done,
        });
    }
    let mut ensemble = Ensemble { members };
    load_safetensors(&mut ensemble, &weights, &weights_path)?;
    Ok(Checkpoint { meta, ensemble })
}

//! Checkpoints: weights (safetensors) plus everything needed to score new data the same
//! way — encoder (schema, scaler, levels), read options, architecture, training settings
//! and the mixture parameters fitted over the training set. Written atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::trainer::TrainConfig;
use crate::data::{Encoder, ReadOptions};
use crate::hash::fnv1a;
use crate::model::dense::{load_safetensors, safetensors_bytes, Dev};
use crate::model::{Dagmm, DagmmConfig, GmmParams};

/// Identifies the checkpoint layout; bumped when it changes.
pub const FORMAT: &str = "dagmm-tui-checkpoint/2";
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
    pub model: DagmmConfig,
    pub train: TrainConfig,
    pub gmm: GmmParams,
    pub epochs_done: usize,
}

/// A loaded checkpoint: ready to score.
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub dev: Dev,
    pub model: Dagmm,
}

/// Writes `model` and `meta` into `dir` (created if needed); each file goes through a
/// temporary name and a rename, so a crash never leaves a half-written checkpoint file.
pub fn save(dir: &Path, model: &Dagmm, meta: &CheckpointMeta) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let weights = safetensors_bytes(&mut model.clone())?;
    let weights_tmp = dir.join(format!(".{WEIGHTS}.tmp"));
    write_synced(&weights_tmp, &weights)?;
    let mut value = serde_json::to_value(meta)?;
    value[WEIGHTS_HASH] = format!("{:016x}", fnv1a(&weights)).into();
    let meta_tmp = dir.join(format!(".{META}.tmp"));
    write_synced(&meta_tmp, &serde_json::to_vec_pretty(&value)?)?;
    fs::rename(&weights_tmp, dir.join(WEIGHTS))?;
    fs::rename(&meta_tmp, dir.join(META))?;
    Ok(())
}

/// Writes `bytes` to `path` and pushes them to the disk before returning.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file =
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
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
    if meta.model.input != meta.encoder.width() {
        bail!(
            "{}: model input width does not match the encoder",
            meta_path.display()
        );
    }
    meta.gmm
        .factorise()
        .map_err(|e| anyhow::anyhow!("{}: unusable mixture: {e}", meta_path.display()))?;
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
    let dev = Dev::seed_from_u64(meta.train.seed);
    let mut model = Dagmm::new(&dev, meta.model.clone(), meta.train.seed);
    load_safetensors(&mut model, &weights, &weights_path)?;
    Ok(Checkpoint { meta, dev, model })
}

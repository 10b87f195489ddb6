//! `dagmm-tui bench`: the engine's throughput on the KDDCUP shape, in one command — the
//! full training step (forward, energy, backward, Adam), scoring, and loading + encoding a
//! real file — with the spread over repeats, so a claim about speed is a command anyone can
//! rerun. `cargo bench --bench throughput` calls the same code.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

use crate::data::{read_table, Encoder, Matrix, ReadOptions, ScaleKind};
use crate::model::{DagmmConfig, DetectorConfig, DetectorKind, EgbadConfig, Preset};
use crate::train::{TrainConfig, Trainer};

/// The KDDCUP 10 % file `bench` loads when it exists (from the repository's checkout).
pub const KDDCUP_FILE: &str = "../shared/data/kddcup99_10pct.csv.gz";

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The detector whose step and scoring are timed: DAGMM with the paper's KDDCUP
    /// network and batch, or EGBAD with the authors' KDDCUP network and its default batch.
    pub detector: DetectorKind,
    /// Compute threads (the rayon pool training and scoring run in).
    pub threads: usize,
    /// Synthetic KDDCUP-shaped rows to train and score on (ignored with `data`).
    pub rows: usize,
    /// Train and score on this file's encoded rows instead of synthetic ones.
    pub data: Option<PathBuf>,
    /// Timed repeats of each measurement, after one warm-up (at least 3).
    pub repeats: usize,
    /// Files whose loading and encoding is timed, one after the other in the same run, so
    /// formats compare as ratios (missing files are skipped).
    pub load: Vec<PathBuf>,
}

/// Median, min and max of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub repeats: usize,
}

impl Spread {
    /// The spread of `values` (not empty).
    pub fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Spread {
            median,
            min: values[0],
            max: values[n - 1],
            repeats: n,
        }
    }
}

/// Loading and encoding one file, as the workbench does (two passes, then encoding).
#[derive(Debug, Clone, Serialize)]
pub struct LoadFigures {
    pub file: String,
    pub rows: usize,
    /// Size on disk (compressed for gzip).
    pub file_mb: f64,
    /// Size of the text (decompressed; for Parquet, its size on disk).
    pub csv_mb: f64,
    /// Seconds to read and encode, warm (the file in the page cache).
    pub seconds: Spread,
    /// Text megabytes per second at the median time.
    pub csv_mb_per_s: f64,
    /// Rows read and encoded per second at the median time.
    pub rows_per_s: f64,
}

/// Everything `bench` measured. The JSON keys are stable (README, "Performance").
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub threads: usize,
    pub rows: usize,
    pub features: usize,
    pub batch: usize,
    pub model: String,
    /// Samples per second of the full training step, one epoch per repeat.
    pub train_samples_per_s: Spread,
    /// Rows per second scored by a fitted model (forward pass and energy).
    pub score_samples_per_s: Spread,
    /// One entry per file given to `--load` that exists.
    pub load: Vec<LoadFigures>,
    /// Peak resident memory of the process, in MB.
    pub peak_rss_mb: f64,
}

/// Synthetic KDDCUP-shaped rows: 38 skewed numerics in [0, 1] and three one-hot groups
/// (3 protocols, 66 services, 13 flags), 120 columns.
pub fn kddcup_shaped(rows: usize) -> Matrix {
    let mut rng = StdRng::seed_from_u64(1);
    let cols = 120;
    let mut data = vec![0f32; rows * cols];
    for row in data.chunks_exact_mut(cols) {
        for v in row.iter_mut().take(38) {
            *v = rng.gen::<f32>().powi(4);
        }
        row[38 + rng.gen_range(0..3)] = 1.0;
        row[41 + rng.gen_range(0..66)] = 1.0;
        row[107 + rng.gen_range(0..13)] = 1.0;
    }
    Matrix { rows, cols, data }
}

/// Runs every measurement in a pool of `options.threads` threads.
pub fn run(options: &BenchOptions) -> Result<BenchReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.max(1))
        .build()?;
    pool.install(|| measure(options))
}

fn measure(options: &BenchOptions) -> Result<BenchReport> {
    let repeats = options.repeats.max(3);
    let data = match &options.data {
        Some(path) => encoded(path)?,
        None => kddcup_shaped(options.rows),
    };
    let model = match options.detector {
        DetectorKind::Dagmm => {
            DetectorConfig::Dagmm(DagmmConfig::preset(Preset::Kddcup, data.cols))
        }
        DetectorKind::Egbad => DetectorConfig::Egbad(EgbadConfig::default_for(data.cols)),
    };
    let batch = options.detector.default_batch();
    let train = TrainConfig {
        epochs: 1,
        batch,
        lr: 1e-4,
        seed: 0,
        members: 1,
    };
    let mut trainer = Trainer::new(model.clone(), train, data.rows);
    let mut epoch_rate = || -> Result<f64> {
        let summary = trainer.epoch(&data, |_| true)?;
        Ok(summary.samples as f64 / summary.seconds.max(1e-12))
    };
    epoch_rate()?; // warm-up: allocator caches, page faults
    let train_rates = (0..repeats)
        .map(|_| epoch_rate())
        .collect::<Result<Vec<f64>>>()?;

    let fit = trainer
        .network
        .fit(&trainer.dev, &data, None)
        .map_err(anyhow::Error::msg)?;
    let score_rate = || {
        let started = Instant::now();
        let scores = fit.detector.raw_scores(&data);
        debug_assert_eq!(scores.len(), data.rows);
        data.rows as f64 / started.elapsed().as_secs_f64().max(1e-12)
    };
    score_rate();
    let score_rates = (0..repeats).map(|_| score_rate()).collect();

    let load = options
        .load
        .iter()
        .filter(|path| path.is_file())
        .map(|path| time_load(path, repeats))
        .collect::<Result<Vec<_>>>()?;
    Ok(BenchReport {
        threads: rayon::current_num_threads(),
        rows: data.rows,
        features: data.cols,
        batch,
        model: model.describe(),
        train_samples_per_s: Spread::of(train_rates),
        score_samples_per_s: Spread::of(score_rates),
        load,
        peak_rss_mb: peak_rss_bytes() as f64 / 1e6,
    })
}

/// The rows of `path` encoded as the workbench encodes them (min-max scaling).
fn encoded(path: &Path) -> Result<Matrix> {
    let table = read_table(path, &ReadOptions::default(), None)?;
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, _) = Encoder::fit(&table, &all, ScaleKind::Minmax)?;
    Ok(encoder.transform(&table, &all).matrix)
}

/// Reads and encodes `path` once to warm the page cache, then `repeats` timed times.
fn time_load(path: &Path, repeats: usize) -> Result<LoadFigures> {
    let mut rows = 0;
    let mut once = || -> Result<f64> {
        let started = Instant::now();
        rows = encoded(path)?.rows;
        Ok(started.elapsed().as_secs_f64())
    };
    once()?;
    let seconds = Spread::of((0..repeats).map(|_| once()).collect::<Result<_>>()?);
    let file_bytes = std::fs::metadata(path)?.len();
    let csv_bytes = text_bytes(path)?;
    Ok(LoadFigures {
        file: path.display().to_string(),
        rows,
        file_mb: file_bytes as f64 / 1e6,
        csv_mb: csv_bytes as f64 / 1e6,
        csv_mb_per_s: csv_bytes as f64 / 1e6 / seconds.median,
        rows_per_s: rows as f64 / seconds.median,
        seconds,
    })
}

/// Bytes of text in `path` (decompressed when it is gzip, as the readers detect it).
fn text_bytes(path: &Path) -> Result<u64> {
    let mut reader = crate::data::source::open_text(path)?;
    Ok(std::io::copy(&mut reader, &mut std::io::sink())?)
}

/// Peak resident set size of this process so far, in bytes (Linux; 0 elsewhere).
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

impl BenchReport {
    /// The human-readable report.
    pub fn lines(&self) -> Vec<String> {
        let spread = |s: &Spread| {
            format!(
                "median {:>10.0}  min {:>10.0}  max {:>10.0}  ({} repeats)",
                s.median, s.min, s.max, s.repeats
            )
        };
        let mut out = vec![
            format!(
                "{} rows × {} features, {}, batch {}, {} thread(s)",
                self.rows, self.features, self.model, self.batch, self.threads
            ),
            format!("train  samples/s  {}", spread(&self.train_samples_per_s)),
            format!("score  samples/s  {}", spread(&self.score_samples_per_s)),
        ];
        for l in &self.load {
            out.push(format!(
                "load   {}: {} rows, {:.1} MB of text ({:.1} MB on disk) read and encoded in {:.3} s median (min {:.3}, max {:.3}): {:.0} MB/s, {:.0} rows/s",
                l.file,
                l.rows,
                l.csv_mb,
                l.file_mb,
                l.seconds.median,
                l.seconds.min,
                l.seconds.max,
                l.csv_mb_per_s,
                l.rows_per_s
            ));
        }
        if self.load.is_empty() {
            out.push("load   skipped (no file: --load FILE[,FILE…])".into());
        }
        out.push(format!("peak RSS {:.0} MB", self.peak_rss_mb));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_median_and_range() {
        let s = Spread::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.repeats), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(vec![4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn a_small_bench_measures_every_figure() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "a,b\n1,x\n2,y\n3,x\n").unwrap();
        let report = run(&BenchOptions {
            detector: DetectorKind::Dagmm,
            threads: 1,
            rows: 2048,
            data: None,
            repeats: 3,
            load: vec![file, dir.path().join("absent.csv")],
        })
        .unwrap();
        assert_eq!(
            (report.rows, report.features, report.threads),
            (2048, 120, 1)
        );
        let t = report.train_samples_per_s;
        assert!(t.min > 0.0 && t.min <= t.median && t.median <= t.max);
        assert!(report.score_samples_per_s.min > 0.0);
        assert_eq!(report.load.len(), 1, "a missing file is skipped");
        let load = &report.load[0];
        assert_eq!(load.rows, 3);
        assert_eq!(load.csv_mb, 16e-6);
        assert!(report.peak_rss_mb > 0.0);
        let text = report.lines().join("\n");
        assert!(
            text.contains("train  samples/s") && text.contains("3 rows"),
            "{text}"
        );
    }
}

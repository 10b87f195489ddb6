//! Training and scoring throughput for the KDDCUP shape: 120 inputs, the paper's network
//! (120-60-30-10-1 + mirror, estimation 3-10-4, K = 4), batch 1024. Prints samples/s for
//! 1 and 2 compute threads. Run with `cargo bench`.

use std::time::Instant;

use dagmm_tui::data::Matrix;
use dagmm_tui::model::{DagmmConfig, DetectorConfig, Preset};
use dagmm_tui::train::{TrainConfig, Trainer};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Synthetic KDDCUP-shaped data: 38 min-max scaled numerics and three one-hot groups.
fn kddcup_shaped(rows: usize) -> Matrix {
    let mut rng = StdRng::seed_from_u64(1);
    let cols = 120;
    let mut data = vec![0f32; rows * cols];
    for r in 0..rows {
        let row = &mut data[r * cols..(r + 1) * cols];
        for v in row.iter_mut().take(38) {
            *v = rng.gen::<f32>().powi(4);
        }
        row[38 + rng.gen_range(0..3)] = 1.0;
        row[41 + rng.gen_range(0..66)] = 1.0;
        row[107 + rng.gen_range(0..13)] = 1.0;
    }
    Matrix { rows, cols, data }
}

fn measure(threads: usize, data: &Matrix) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let model = DetectorConfig::Dagmm(DagmmConfig::preset(Preset::Kddcup, data.cols));
        let config = TrainConfig {
            epochs: 1,
            batch: 1024,
            lr: 1e-4,
            seed: 0,
            members: 1,
        };
        let mut trainer = Trainer::new(model, config, data.rows);
        trainer.epoch(data, |_| true).unwrap(); // warm-up: allocator caches, page faults
        let mut rates = Vec::new();
        for _ in 0..3 {
            let summary = trainer.epoch(data, |_| true).unwrap();
            rates.push(summary.samples as f64 / summary.seconds);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "train  threads={threads}  batch=1024  samples/s: min {:>8.0}  median {:>8.0}  max {:>8.0}",
            rates[0], rates[1], rates[2]
        );
        let started = Instant::now();
        let fit = trainer.network.fit(&trainer.dev, data, None).unwrap();
        let fit_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let energies = fit.detector.raw_scores(data);
        let score_secs = started.elapsed().as_secs_f64();
        assert_eq!(energies.len(), data.rows);
        println!(
            "score  threads={threads}  samples/s: {:>8.0}   (mixture fit + scoring of all rows: {:.2} s)",
            data.rows as f64 / score_secs,
            fit_secs
        );
    });
}

fn main() {
    let data = kddcup_shaped(200_000);
    println!(
        "KDDCUP shape: {} rows × {} features, paper architecture, K = 4",
        data.rows, data.cols
    );
    for threads in [1, 2] {
        measure(threads, &data);
    }
}

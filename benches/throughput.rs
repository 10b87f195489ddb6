//! `cargo bench --bench throughput`: `dagmm-tui bench` for each detector at one and two threads (training and
//! scoring samples/s on the KDDCUP shape, loading the KDDCUP file when present), then the
//! heap allocations of a training step and of scoring, counted by this binary's allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use dagmm_tui::bench::{kddcup_shaped, run, BenchOptions, KDDCUP_FILE};
use dagmm_tui::model::{DagmmConfig, DetectorConfig, DetectorKind, Preset};
use dagmm_tui::train::{TrainConfig, Trainer};

/// The system allocator, counting calls and bytes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let (a, b) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let r = f();
    (
        r,
        ALLOCATIONS.load(Ordering::Relaxed) - a,
        BYTES.load(Ordering::Relaxed) - b,
    )
}

fn main() {
    for detector in DetectorKind::ALL {
        for threads in [1, 2] {
            let report = run(&BenchOptions {
                detector,
                threads,
                rows: 200_000,
                data: None,
                repeats: 3,
                // Loading does not depend on the detector: timed once per thread count.
                load: match detector {
                    DetectorKind::Dagmm => vec![KDDCUP_FILE.into()],
                    DetectorKind::Egbad => Vec::new(),
                },
            })
            .expect("bench");
            for line in report.lines() {
                println!("{line}");
            }
        }
    }
    // Allocations in the steady state: one warm epoch, then one counted.
    let data = kddcup_shaped(102_400);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let model = DetectorConfig::Dagmm(DagmmConfig::preset(Preset::Kddcup, data.cols));
            let config = TrainConfig {
                epochs: 1,
                batch: 1024,
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(model, config, data.rows);
            trainer.epoch(&data, |_| true).unwrap();
            let (summary, calls, bytes) = counted(|| trainer.epoch(&data, |_| true).unwrap());
            let steps = (summary.samples / 1024).max(1) as u64;
            println!(
                "allocations  threads={threads}  per training step: {} calls, {:.1} MB",
                calls / steps,
                bytes as f64 / steps as f64 / 1e6
            );
            let fit = trainer.network.fit(&trainer.dev, &data, None).unwrap();
            let (_, calls, bytes) = counted(|| fit.detector.raw_scores(&data));
            println!(
                "allocations  threads={threads}  scoring {} rows: {} calls, {:.1} MB ({:.0} bytes per row)",
                data.rows,
                calls,
                bytes as f64 / 1e6,
                bytes as f64 / data.rows as f64
            );
        });
    }
}

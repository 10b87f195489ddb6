//! `cargo bench --bench throughput`: `dagmm-tui bench` at one and two threads (training and
//! scoring samples/s on the KDDCUP shape, loading the KDDCUP file when present).

use dagmm_tui::bench::{run, BenchOptions, KDDCUP_FILE};

fn main() {
    for threads in [1, 2] {
        let report = run(&BenchOptions {
            threads,
            rows: 200_000,
            data: None,
            repeats: 3,
            load: Some(KDDCUP_FILE.into()),
        })
        .expect("bench");
        for line in report.lines() {
            println!("{line}");
        }
    }
}

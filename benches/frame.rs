//! Frame render time of the full workbench layout (`cargo bench --bench frame`): the app
//! holds the whole KDDCUP 10 % file (494,021 rows) when `../shared/data` has it, else the
//! shipped sample, with every row scored; each frame is drawn on ratatui's TestBackend and
//! timed. Prints p50 and p99 per view and terminal size.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use dagmm_tui::data::{read_table, Encoder, ReadOptions, ScaleKind};
use dagmm_tui::model::RowDetail;
use dagmm_tui::train::{DetectorKind, Explain, LoadedData, Scoring, TrainEvent};
use dagmm_tui::triage::Marks;
use dagmm_tui::ui::action::Action;
use dagmm_tui::ui::app::{App, AppConfig, Msg};
use dagmm_tui::ui::keymap::Keymap;
use dagmm_tui::ui::panes::{draw, Look};
use dagmm_tui::ui::theme::{ColorDepth, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const FRAMES: usize = 300;

/// Per-feature errors without a model: rendering cost does not depend on where they come from.
struct Errors(usize);

impl Explain for Errors {
    fn feature_errors(&self, row: usize) -> Vec<f32> {
        (0..self.0)
            .map(|f| ((f * 31 + row) % 97) as f32 / 97.0)
            .collect()
    }

    fn attribution(
        &self,
        row: usize,
        columns: &[std::ops::Range<usize>],
        _: usize,
    ) -> Option<dagmm_tui::model::Attribution> {
        let contributions: Vec<f64> = (0..columns.len())
            .map(|g| ((g * 13 + row) % 23) as f64 / 23.0)
            .collect();
        Some(dagmm_tui::model::Attribution {
            score: contributions.iter().sum(),
            reference_score: 0.0,
            contributions,
        })
    }
}

fn main() {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/kddcup99_10pct.csv.gz");
    let path = if full.exists() {
        full
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/kddcup99_sample.csv")
    };
    let read = ReadOptions {
        label: Some("attack".into()),
        ..Default::default()
    };
    let table = read_table(&path, &read, None).expect("reading the data");
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, _) = Encoder::fit(&table, &all, ScaleKind::Minmax).unwrap();
    let (rows, features) = (table.len(), encoder.width());
    println!("{}: {rows} rows × {features} features", path.display());
    let loaded = Arc::new(LoadedData {
        feature_names: encoder.feature_names(),
        feature_columns: encoder.feature_columns(),
        notes: Vec::new(),
        model: "DAGMM".into(),
        detectors: vec![DetectorKind::Dagmm],
        checkpoint: None,
        table,
        table_id: 0,
        top_rows: 0,
    });
    let config = AppConfig {
        file: "kddcup".into(),
        export_stem: "kddcup".into(),
        anomaly: Some("normal.".into()),
        contamination: 0.2,
        checkpoint_dir: "/tmp/ckpt".into(),
        training: true,
    };
    let mut app = App::new(
        config,
        Keymap::default(),
        Marks::default(),
        None,
        Instant::now(),
    );
    app.update(Msg::Train(TrainEvent::Loaded(loaded)));
    app.update(Msg::Train(TrainEvent::Started {
        detector: DetectorKind::Dagmm,
        rows,
        features,
        epochs: 20,
        members: 1,
        steps_per_epoch: rows / 1024,
        rescore_every: Some(2),
    }));
    for epoch in 1..=20 {
        let e = epoch as f64;
        app.update(Msg::Train(TrainEvent::Epoch {
            epoch,
            losses: vec![1.0 / e, -e, 100.0 / e, 2.0 / e],
            aux: vec![0.4, 0.3, 0.2, 0.1],
            samples_per_sec: 1.4e5,
            elapsed_secs: 3.5 * e,
        }));
    }
    let scoring_started = Instant::now();
    let energies: Vec<f64> = (0..rows)
        .map(|i| ((i * 7919) % 100_003) as f64 / 1000.0)
        .collect();
    let scoring = Scoring::from_parts(
        DetectorKind::Dagmm,
        20,
        energies,
        RowDetail::default(),
        Arc::new(Errors(features)),
    );
    let sort_ms = scoring_started.elapsed().as_secs_f64() * 1e3;
    let shown_started = Instant::now();
    app.update(Msg::Train(TrainEvent::Scored(Arc::new(scoring))));
    println!(
        "ranking {rows} rows: {sort_ms:.1} ms (worker side); taking a new scoring in the UI (AUROC, view): {:.1} ms",
        shown_started.elapsed().as_secs_f64() * 1e3
    );
    let look = Look {
        theme: Theme::built_in("dark", ColorDepth::Ansi16).unwrap(),
        braille: true,
    };
    for (w, h) in [(160u16, 48u16), (80, 24)] {
        for (view, action) in [
            ("table", None),
            ("inspect", Some(Action::Inspect)),
            ("help", Some(Action::Help)),
        ] {
            if let Some(a) = action {
                app.apply(a);
            }
            let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
            let mut times = Vec::with_capacity(FRAMES);
            for i in 0..FRAMES {
                // Scroll a row per frame, as a user holding j would.
                if view == "table" {
                    app.apply(if i % 50 < 25 {
                        Action::Down
                    } else {
                        Action::Up
                    });
                }
                let t = Instant::now();
                terminal.draw(|f| draw(f, &app, &look)).unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{w}x{h} {view:<8} p50 {:.3} ms  p99 {:.3} ms  ({FRAMES} frames)",
                times[FRAMES / 2],
                times[FRAMES * 99 / 100]
            );
            if action.is_some() {
                app.apply(Action::Back);
            }
        }
    }
    let t = Instant::now();
    app.apply(Action::ThresholdUp);
    println!(
        "threshold step over {rows} rows: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    app.apply(Action::CycleFilter);
    println!(
        "filter change over {rows} rows: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}

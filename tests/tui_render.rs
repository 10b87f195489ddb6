//! Rendering tests: the workbench drawn on ratatui's TestBackend at 80×24 and 160×48, for
//! every pane, the inspect view and the help overlay. The snapshots under
//! `tests/snapshots/` were reviewed by eye; `cargo insta review` shows any change.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use dagmm_tui::data::{read_table, Encoder, LoadProgress, ReadOptions, ScaleKind};
use dagmm_tui::model::Attribution;
use dagmm_tui::model::{DetailGroup, RowDetail};
use dagmm_tui::text::is_unsafe;
use dagmm_tui::train::{
    DetectorKind, Divergence, Explain, LoadedData, Marked, Scoring, TrainEvent,
};
use dagmm_tui::triage::Marks;
use dagmm_tui::ui::action::Action;
use dagmm_tui::ui::app::{App, AppConfig, Msg};
use dagmm_tui::ui::keymap::Keymap;
use dagmm_tui::ui::panes::{draw, Look};
use dagmm_tui::ui::theme::{ColorDepth, Theme};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Modifier;
use ratatui::Terminal;

mod common;

/// Reconstruction errors that depend only on the row and feature: deterministic.
struct FixedErrors(usize);

impl Explain for FixedErrors {
    fn feature_errors(&self, row: usize) -> Vec<f32> {
        (0..self.0)
            .map(|f| ((f * 31 + row * 17) % 97) as f32 / 97.0 * if f % 5 == 0 { 1.0 } else { 0.1 })
            .collect()
    }

    /// Contributions that depend only on the row and column, on top of a typical score 1.
    fn attribution(
        &self,
        row: usize,
        columns: &[std::ops::Range<usize>],
        _: usize,
    ) -> Option<Attribution> {
        let contributions: Vec<f64> = (0..columns.len())
            .map(|g| ((g * 13 + row * 7) % 23) as f64 / 23.0 - 0.2)
            .collect();
        Some(Attribution {
            score: 1.0 + contributions.iter().sum::<f64>(),
            reference_score: 1.0,
            contributions,
        })
    }
}

fn config() -> AppConfig {
    AppConfig {
        file: "kddcup99_sample.csv".into(),
        export_stem: "kddcup99_sample".into(),
        anomaly: Some("normal.".into()),
        contamination: 0.2,
        checkpoint_dir: "/state/checkpoint".into(),
        training: true,
    }
}

fn loaded() -> Arc<LoadedData> {
    loaded_with(&[DetectorKind::Dagmm])
}

/// The sample, loaded for a session of `detectors`.
fn loaded_with(detectors: &[DetectorKind]) -> Arc<LoadedData> {
    let mut data = loaded_from(&common::sample(), "attack");
    Arc::get_mut(&mut data).unwrap().detectors = detectors.to_vec();
    data
}

fn loaded_from(path: &Path, label: &str) -> Arc<LoadedData> {
    let read = ReadOptions {
        label: Some(label.into()),
        ..Default::default()
    };
    let table = read_table(path, &read, None).unwrap();
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, notes) = Encoder::fit(&table, &all, ScaleKind::Minmax).unwrap();
    Arc::new(LoadedData {
        feature_names: encoder.feature_names(),
        feature_columns: encoder.feature_columns(),
        notes,
        model: "DAGMM 89-60-30-10-1 K=4 est 10".into(),
        detectors: vec![DetectorKind::Dagmm],
        checkpoint: None,
        table,
        table_id: 0,
        top_rows: 0,
    })
}

/// DAGMM's loss components: reconstruction, energy, penalty, total.
fn loss(epoch: usize) -> Vec<f64> {
    let e = epoch as f64;
    vec![
        10.0 / (1.0 + 0.3 * e) + 2.0,
        -2.0 - 0.4 * e + 0.05 * (e * 1.7).sin(),
        400.0 / (1.0 + e * e),
        10.0 / (1.0 + 0.3 * e) + 2.0 + 0.1 * (-2.0 - 0.4 * e) + 0.005 * 400.0 / (1.0 + e * e),
    ]
}

/// DAGMM's per-row detail: γ̂ over K = 4 and z = [z_c, rel dist, cosine].
fn dagmm_detail(rows: usize) -> RowDetail {
    let z: Vec<f64> = (0..rows)
        .flat_map(|i| {
            [
                0.1 * (i % 10) as f64,
                0.01 * (i % 7) as f64,
                1.0 - 0.001 * (i % 13) as f64,
            ]
        })
        .collect();
    let gamma: Vec<f64> = (0..rows)
        .flat_map(|i| {
            let w = [1.0 + (i % 3) as f64, 2.0, 0.5 + (i % 5) as f64 * 0.3, 1.0];
            let s: f64 = w.iter().sum();
            w.map(|v| v / s)
        })
        .collect();
    RowDetail {
        groups: vec![
            DetailGroup {
                title: "Memberships γ̂".into(),
                names: (1..=4).map(|k| format!("k{k}")).collect(),
                values: gamma,
                shares: true,
            },
            DetailGroup {
                title: "z = [z_c, rel dist, cosine]".into(),
                names: vec!["z1".into(), "rel dist".into(), "cosine".into()],
                values: z,
                shares: false,
            },
        ],
    }
}

fn scoring(rows: usize, features: usize, epoch: usize) -> Arc<Scoring> {
    let energies: Vec<f64> = (0..rows)
        .map(|i| ((i * 7919) % 1009) as f64 / 37.0 - 5.0)
        .collect();
    Arc::new(Scoring::from_parts(
        DetectorKind::Dagmm,
        epoch,
        energies,
        dagmm_detail(rows),
        Arc::new(FixedErrors(features)),
    ))
}

/// A fresh app with the test configuration and no marks.
fn app_at(now: Instant) -> App {
    App::new(config(), Keymap::default(), Marks::default(), None, now)
}

/// An app that has loaded the sample, trained `epochs` of 20 epochs, and scored.
fn trained_app(epochs: usize) -> App {
    trained_app_on(config(), loaded(), epochs)
}

/// An app that has loaded `data`, trained `epochs` of 20 epochs, and scored.
fn trained_app_on(config: AppConfig, data: Arc<LoadedData>, epochs: usize) -> App {
    let now = Instant::now();
    let mut app = App::new(config, Keymap::default(), Marks::default(), None, now);
    let (rows, features) = (data.table.len(), data.feature_names.len());
    let events = [
        TrainEvent::Loaded(data),
        TrainEvent::Started {
            detector: DetectorKind::Dagmm,
            rows,
            features,
            epochs: 20,
            members: 1,
            steps_per_epoch: 5,
            rescore_every: Some(2),
        },
    ];
    for e in events {
        app.update(Msg::Train(e));
    }
    for epoch in 1..=epochs {
        let phi = vec![
            0.4 - 0.01 * epoch as f64,
            0.3,
            0.2,
            0.1 + 0.01 * epoch as f64,
        ];
        app.update(Msg::Train(TrainEvent::Epoch {
            epoch,
            losses: loss(epoch),
            aux: phi,
            samples_per_sec: 123_456.0,
            elapsed_secs: 2.0 * epoch as f64,
        }));
    }
    app.update(Msg::Train(TrainEvent::Step {
        epoch: epochs + 1,
        step: 2,
        losses: loss(epochs + 1),
    }));
    app.update(Msg::Train(TrainEvent::Scored(scoring(
        rows, features, epochs,
    ))));
    app.message = None;
    app
}

fn look() -> Look {
    Look {
        theme: Theme::built_in("dark", ColorDepth::Ansi16).unwrap(),
        braille: true,
    }
}

fn render(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| draw(f, app, &look())).unwrap();
    terminal
}

fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// Snapshots `app` as `{name}_80x24` and `{name}_160x48`, each screen printable.
fn snapshot_at_both_sizes(app: &App, name: &str) {
    for (w, h) in [(80, 24), (160, 48)] {
        let terminal = render(app, w, h);
        assert_printable(&terminal);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
    }
}

/// Every cell's symbol is printable: no control, bidi or zero-width character reaches the
/// terminal.
fn assert_printable(terminal: &Terminal<TestBackend>) {
    for cell in terminal.backend().buffer().content() {
        assert!(
            !cell.symbol().chars().any(is_unsafe),
            "unsafe character in {:?}",
            cell.symbol()
        );
    }
}

/// An app that loaded the sample and trained `epochs` of 20 EGBAD epochs, then scored.
fn egbad_app(epochs: usize) -> App {
    let now = Instant::now();
    let mut app = app_at(now);
    let data = loaded_with(&[DetectorKind::Egbad]);
    let (rows, features) = (data.table.len(), data.feature_names.len());
    app.update(Msg::Train(TrainEvent::Loaded(data)));
    train_egbad(&mut app, epochs, rows, features);
    app
}

/// A side-by-side session: DAGMM trained 8 epochs and scored, then EGBAD `epochs` epochs
/// and scored.
fn side_by_side_app(epochs: usize) -> App {
    let data = loaded_with(&[DetectorKind::Dagmm, DetectorKind::Egbad]);
    let (rows, features) = (data.table.len(), data.feature_names.len());
    let mut app = trained_app_on(config(), data, 8);
    train_egbad(&mut app, epochs, rows, features);
    app
}

/// Sends `app` the events of `epochs` of 20 EGBAD epochs and a scoring.
fn train_egbad(app: &mut App, epochs: usize, rows: usize, features: usize) {
    app.update(Msg::Train(TrainEvent::Started {
        detector: DetectorKind::Egbad,
        rows,
        features,
        epochs: 20,
        members: 1,
        steps_per_epoch: 5,
        rescore_every: Some(2),
    }));
    for epoch in 1..=epochs {
        let e = epoch as f64;
        app.update(Msg::Train(TrainEvent::Epoch {
            epoch,
            losses: vec![
                1.3 - 0.05 * e,
                0.7 + 0.1 * e,
                0.5 + 0.04 * e,
                0.6 + 0.03 * e,
            ],
            aux: Vec::new(),
            samples_per_sec: 16_000.0,
            elapsed_secs: 2.0 * e,
        }));
    }
    let scores: Vec<f64> = (0..rows)
        .map(|i| ((i * 7919) % 1009) as f64 / 97.0 - 2.0 + if i % 50 == 0 { 20.0 } else { 0.0 })
        .collect();
    let detail = RowDetail {
        groups: vec![DetailGroup {
            title: "Score parts (α = 0.9)".into(),
            names: vec!["L_G ‖x−G(E(x))‖₁".into(), "L_D cross-entropy".into()],
            values: (0..rows)
                .flat_map(|i| [3.0 + (i % 11) as f64 * 0.5, 0.2 + (i % 3) as f64 * 0.1])
                .collect(),
            shares: false,
        }],
    };
    app.update(Msg::Train(TrainEvent::Scored(Arc::new(
        Scoring::from_parts(
            DetectorKind::Egbad,
            epochs,
            scores,
            detail,
            Arc::new(FixedErrors(features)),
        ),
    ))));
    app.message = None;
}

#[test]
fn egbad_panes_show_its_losses_the_score_distribution_and_its_score_parts() {
    let mut app = egbad_app(6);
    snapshot_at_both_sizes(&app, "egbad_main");
    let text = screen(&app, 160, 48);
    for expected in [
        "EGBAD loss per epoch",
        "D loss",
        "G/E loss",
        "D real",
        "D fake",
        "Score distribution",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert!(!text.contains("Mixture weights"), "{text}");
    // A diverged game shows in the status line, with the epoch kept.
    let mut diverged = egbad_app(6);
    diverged.update(Msg::Train(TrainEvent::Diverged(Divergence {
        member: 1,
        epoch: 6,
        reason: "the discriminator's loss fell to 0.010".into(),
        kept_epoch: 2,
    })));
    assert_eq!(diverged.progress().diverged_keeping, Some(2));
    let status = screen(&diverged, 160, 48);
    assert!(
        status
            .lines()
            .next()
            .unwrap()
            .contains("⚠ diverged, keeping epoch 2"),
        "{status}"
    );
    assert!(
        status.contains("training diverged"),
        "the footer says why: {status}"
    );
    // A member whose fit chose L_D alone is counted in the status line, and the log says why.
    let mut chosen = egbad_app(6);
    chosen.update(Msg::Train(TrainEvent::ScoreChosen {
        detector: DetectorKind::Egbad,
        member: 1,
        note: "scored by L_D alone: its right tail is long and longer than the combined score's (skewness 6.89 against -0.41)".into(),
    }));
    assert_eq!(chosen.progress().by_discriminator, vec![1]);
    let status = screen(&chosen, 160, 48);
    let first = status.lines().next().unwrap();
    assert!(first.contains("1 of 1 scored by L_D"), "{status}");
    assert!(
        status.contains("member 1: scored by L_D alone"),
        "the footer says why: {status}"
    );
    // Scores say which members they were fitted with on L_D alone (a refit after marks, a
    // checkpoint): the count follows them, whatever events came before.
    let rows = chosen.table.shown().map_or(0, |s| s.scoring.len());
    let mut refitted = Scoring::from_parts(
        DetectorKind::Egbad,
        6,
        (0..rows).map(|i| i as f64).collect(),
        RowDetail::default(),
        Arc::new(FixedErrors(4)),
    );
    refitted.members = 3;
    refitted.by_discriminator = vec![1, 3];
    chosen.update(Msg::Train(TrainEvent::Scored(Arc::new(refitted))));
    assert_eq!(chosen.progress().by_discriminator, vec![1, 3]);
    app.apply(Action::Inspect);
    snapshot_at_both_sizes(&app, "egbad_inspect");
    let text = screen(&app, 160, 48);
    assert!(
        text.contains("Score parts (α = 0.9)") && text.contains("why flagged: by column"),
        "{text}"
    );
    app.apply(Action::ToggleExplanation);
    let text = screen(&app, 160, 48);
    assert!(text.contains("|x − G(E(x))| by feature"), "{text}");
}

#[test]
fn side_by_side_table_ranks_by_either_detector_and_shows_their_agreement() {
    let mut app = side_by_side_app(6);
    snapshot_at_both_sizes(&app, "side_by_side");
    // DAGMM scored first, so it ranks; EGBAD's rank sits beside it; EGBAD trained last,
    // so its panes show.
    let text = screen(&app, 160, 48);
    for expected in [
        "Ranked by DAGMM score",
        "both flag",
        "Spearman",
        "EGBAD",
        "EGBAD loss per epoch",
        "EGBAD score distribution",
        "EGBAD 2/2",
        "rank by",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    let agreement = app.table.agreement.unwrap();
    let flagged = app.table.flagged_count();
    assert_eq!(agreement.flagged, flagged);
    assert!(agreement.both_flagged <= flagged && agreement.spearman.abs() <= 1.0);
    // `o` ranks by EGBAD; the selection stays on its row once moved.
    app.update(key('j'));
    let chosen = app.table.selected.unwrap();
    app.update(key('o'));
    assert_eq!(app.table.shown().unwrap().detector(), DetectorKind::Egbad);
    assert_eq!(app.table.selected, Some(chosen));
    assert!(screen(&app, 160, 48).contains("Ranked by EGBAD score"));
    // `d` shows DAGMM's panes: its loss series and the mixture weights.
    app.update(key('d'));
    assert_eq!(app.viewed_run().detector, DetectorKind::Dagmm);
    let text = screen(&app, 160, 48);
    assert!(text.contains("DAGMM loss per epoch") && text.contains("Mixture weights"));
    snapshot_at_both_sizes(&app, "side_by_side_egbad_ranked_dagmm_panes");
    // A refit rescores both; the footer reports once the ranking detector's scores are in.
    app.update(key('o'));
    assert_eq!(app.table.shown().unwrap().detector(), DetectorKind::Dagmm);
    app.apply(Action::Rescore);
    app.message = None;
    let again = |kind| {
        let old = app_scoring(&app, kind);
        Msg::Train(TrainEvent::Scored(Arc::new(Scoring::from_parts(
            kind,
            9,
            old.scores.clone(),
            old.detail.clone(),
            Arc::new(FixedErrors(3)),
        ))))
    };
    let egbad_again = again(DetectorKind::Egbad);
    let dagmm_again = again(DetectorKind::Dagmm);
    app.update(egbad_again);
    assert!(app.message.is_none(), "not yet: EGBAD does not rank");
    app.update(dagmm_again);
    let said = app
        .message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default();
    assert!(
        said.starts_with("refit without 0 row(s) marked anomaly: 0 of"),
        "{said}"
    );
    app.update(key('o'));
    // Exports carry both detectors' scores and ranks, the ranking one first.
    let (detectors, rows) = app.export_rows();
    assert_eq!(detectors, ["egbad", "dagmm"]);
    assert_eq!(rows.len(), flagged);
    let top = &rows[0];
    assert_eq!(top.scores[0].rank, 1);
    let row = app.table.visible[0] as usize;
    let dagmm = &app.table.scorings[0].scoring;
    assert_eq!(top.scores[1].rank, dagmm.rank(row));
    assert_eq!(top.scores[1].score, dagmm.scores[row]);
}

/// The latest scoring of `kind` the table holds.
fn app_scoring(app: &App, kind: DetectorKind) -> Arc<Scoring> {
    let shown = app.table.scorings.iter().find(|s| s.detector() == kind);
    shown.unwrap().scoring.clone()
}

#[test]
fn main_view_while_training() {
    let mut app = trained_app(8);
    app.update(key('j'));
    app.update(key('j'));
    app.update(key('a'));
    app.message = None;
    snapshot_at_both_sizes(&app, "main");
}

#[test]
fn inspect_view() {
    let mut app = trained_app(8);
    app.apply(Action::Inspect);
    snapshot_at_both_sizes(&app, "inspect");
    // Why flagged by column: the contributions, largest first, and what they add up to.
    let text = screen(&app, 160, 48);
    assert!(
        text.contains("why flagged: by column") && text.contains("= typical 1.000"),
        "{text}"
    );
    // Tab: the reconstruction error by feature instead; tab again: back.
    app.inspect_scroll = 3;
    app.apply(Action::ToggleExplanation);
    assert!(app.inspect_reconstruction && app.inspect_scroll == 0);
    let text = screen(&app, 160, 48);
    assert!(
        text.contains("reconstruction error (x − x̂)² by feature (tab: by column)"),
        "{text}"
    );
    app.apply(Action::ToggleExplanation);
    assert!(!app.inspect_reconstruction);
}

#[test]
fn help_overlay() {
    let mut app = trained_app(3);
    app.apply(Action::Help);
    snapshot_at_both_sizes(&app, "help");
}

#[test]
fn loading_gauge_then_waiting_for_scores() {
    let now = Instant::now();
    let mut app = app_at(now);
    app.update(Msg::Train(TrainEvent::Loading(LoadProgress {
        pass: 2,
        bytes_read: 3_000_000,
        file_bytes: 4_000_000,
        records: 123_456,
    })));
    insta::assert_snapshot!("loading_80x24", render(&app, 80, 24).backend());
    app.update(Msg::Train(TrainEvent::Loaded(loaded())));
    app.update(Msg::Train(TrainEvent::Started {
        detector: DetectorKind::Dagmm,
        rows: 5011,
        features: 89,
        epochs: 20,
        members: 1,
        steps_per_epoch: 5,
        rescore_every: Some(2),
    }));
    app.message = None;
    insta::assert_snapshot!("waiting_160x48", render(&app, 160, 48).backend());
}

#[test]
fn paused_with_hidden_series_log_scale_and_filter() {
    let mut app = trained_app(12);
    app.update(Msg::Train(TrainEvent::Paused));
    for action in [
        Action::ToggleSeries(1),
        Action::ToggleSeries(3),
        Action::LogScale,
        Action::CycleFilter,
    ] {
        app.apply(action);
    }
    app.message = None;
    insta::assert_snapshot!("paused_filtered_80x24", render(&app, 80, 24).backend());
}

#[test]
fn prompts_and_questions_in_the_footer() {
    let mut app = trained_app(4);
    app.apply(Action::Export);
    let footer = |app: &App| {
        let t = render(app, 80, 24);
        let buffer = t.backend().buffer().clone();
        (0..80)
            .map(|x| buffer[(x, 23)].symbol().to_string())
            .collect::<String>()
    };
    assert!(footer(&app).starts_with("Export to (.csv or .jsonl): kddcup99_sample-triage.csv"));
    app.update(Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    app.apply(Action::Quit);
    assert!(
        footer(&app).starts_with("Quit? training is running"),
        "{}",
        footer(&app)
    );
}

#[test]
fn esc_and_a_key_read_together_close_the_prompt_and_act() {
    let mut app = trained_app(4);
    app.apply(Action::Search);
    app.update(Msg::Paste("tcp".into()));
    // What a terminal reports when Esc and q arrive in one read.
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('q'),
        KeyModifiers::ALT,
    )));
    let footer = render(&app, 80, 24).backend().to_string();
    assert!(footer.contains("Quit? training is running"), "{footer}");
    assert!(!footer.contains("tcpq"), "{footer}");
    // Other modifiers survive: in the prompt, Esc then ctrl-c asks to quit (a ctrl-c typed
    // in the prompt would only cancel it).
    app.update(Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    app.apply(Action::Search);
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::ALT | KeyModifiers::CONTROL,
    )));
    let footer = render(&app, 80, 24).backend().to_string();
    assert!(footer.contains("Quit? training is running"), "{footer}");
}

#[test]
fn esc_and_a_key_read_together_leave_the_inspect_view_then_act() {
    let mut app = trained_app(2);
    let top = app.table.visible[0];
    app.apply(Action::Inspect);
    assert_eq!(format!("{:?}", app.mode), "Inspect");
    // Esc (back to the table), then j (the next row); read as a plain j it would scroll
    // the inspect view instead.
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('j'),
        KeyModifiers::ALT,
    )));
    assert_eq!(format!("{:?}", app.mode), "Normal");
    assert_eq!(app.table.selected, Some(app.table.visible[1]));
    assert_ne!(app.table.selected, Some(top));
}

#[test]
fn tiny_terminal_says_so() {
    let app = trained_app(2);
    let terminal = render(&app, 40, 10);
    let text = terminal.backend().to_string();
    assert!(text.contains("terminal too small"), "{text}");
}

#[test]
fn tiny_terminal_shows_the_quit_question_and_an_open_prompt() {
    let mut app = trained_app(2);
    app.apply(Action::Quit);
    let terminal = render(&app, 40, 10);
    assert_printable(&terminal);
    let text = terminal.backend().to_string();
    assert!(
        text.contains("terminal too small") && text.contains("Quit?"),
        "{text}"
    );
    insta::assert_snapshot!("tiny_quit_question_40x10", terminal.backend());
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('n'),
        KeyModifiers::NONE,
    )));
    app.apply(Action::Search);
    app.update(Msg::Paste("tcp".into()));
    let text = render(&app, 40, 10).backend().to_string();
    assert!(text.contains("Search (row #N or text): tcp"), "{text}");
}

#[test]
fn a_paste_goes_into_an_open_prompt_and_nowhere_else() {
    let mut app = trained_app(2);
    let before = format!("{:?}", app.mode);
    // Outside a prompt, pasted text is not a stream of commands ("q" would quit).
    app.update(Msg::Paste("qqq/aaa".into()));
    assert_eq!(format!("{:?}", app.mode), before);
    app.apply(Action::Search);
    app.update(Msg::Paste("x".repeat(10_000)));
    let footer = render(&app, 80, 24).backend().to_string();
    assert!(footer.contains("[10,000 chars]"), "{footer}");
}

#[test]
fn selection_reads_without_colour() {
    let app = trained_app(2);
    let look = Look {
        theme: Theme::built_in("monochrome", ColorDepth::Ansi16).unwrap(),
        braille: false,
    };
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    terminal.draw(|f| draw(f, &app, &look)).unwrap();
    let buffer = terminal.backend().buffer();
    let row = (0..24)
        .find(|&y| buffer[(1, y)].symbol() == "▶")
        .expect("a selected row");
    assert!(buffer[(3, row)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn selection_stays_on_top_until_moved_then_follows_its_row() {
    let mut app = trained_app(2);
    let rows = app.data.as_ref().unwrap().loaded.table.len();
    let features = app.data.as_ref().unwrap().loaded.feature_names.len();
    let top = app.table.visible[0];
    // A rescore with reversed energies: the untouched selection moves to the new top.
    let reversed = |scoring: &Scoring| {
        let energies: Vec<f64> = scoring.scores.iter().map(|e| -e).collect();
        Arc::new(Scoring::from_parts(
            DetectorKind::Dagmm,
            4,
            energies,
            scoring.detail.clone(),
            Arc::new(FixedErrors(features)),
        ))
    };
    let next = reversed(&app.table.shown().unwrap().scoring);
    app.update(Msg::Train(TrainEvent::Scored(next)));
    assert_ne!(app.table.selected, Some(top));
    assert_eq!(app.table.selected, Some(app.table.visible[0]));
    // Once moved, the selection keeps its row wherever the ranking puts it.
    app.update(key('j'));
    let chosen = app.table.selected.unwrap();
    let next = reversed(&app.table.shown().unwrap().scoring);
    app.update(Msg::Train(TrainEvent::Scored(next)));
    assert_eq!(app.table.selected, Some(chosen));
    // Second from the top before, so near the bottom now (ties may reorder a few).
    assert!(app.table.visible_index(chosen).unwrap() > rows - 10);
}

#[test]
fn hostile_text_shows_as_visible_escapes_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::hostile_csv(dir.path(), 60);
    let data = loaded_from(&path, common::HOSTILE_LABEL);
    let hostile = AppConfig {
        file: path.file_name().unwrap().to_string_lossy().into_owned(),
        export_stem: "hostile".into(),
        anomaly: Some("evil\x1b[5m".into()),
        ..config()
    };
    let mut app = trained_app_on(hostile, data, 3);
    // Every escape the file holds, as the user must see it somewhere on screen.
    let mut expected = vec![
        "hostile\\x1b[1m.csv",
        "dur\\x1b[31m",
        "evil\\x1b[5m",
        "proto\\u202e",
        "\\x1b]0;pwned\\x07",
        "zero\\u200bwidth",
        "\\u009b2J\\u202etxt.exe",
    ];
    let mut seen = String::new();
    let mut look_at = |app: &App, w: u16, h: u16| {
        let terminal = render(app, w, h);
        assert_printable(&terminal);
        seen += &terminal.backend().to_string();
    };
    look_at(&app, 160, 48);
    look_at(&app, 80, 24);
    // The inspect view of a few rows: every protocol value and column name.
    for _ in 0..6 {
        app.apply(Action::Inspect);
        look_at(&app, 160, 48);
        app.update(Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
        app.update(key('j'));
    }
    // A search prompt holding pasted characters (control ones are refused, a bidi override
    // is kept and shown escaped), then its answer in the status line.
    app.apply(Action::Search);
    for c in "\x1b[2J\u{202e}x".chars() {
        app.update(key(c));
    }
    look_at(&app, 80, 24);
    app.update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    look_at(&app, 80, 24);
    expected.push("Search (row #N or text): [2J\\u202ex");
    expected.push("'[2J\\u202ex': no match");
    for text in expected {
        assert!(seen.contains(text), "{text} not shown");
    }
}

/// The whole screen as text, row by row.
fn screen(app: &App, width: u16, height: u16) -> String {
    let t = render(app, width, height);
    let buffer = t.backend().buffer().clone();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn ensemble_member_in_training_shows_in_status_and_loss_pane() {
    let mut app = app_at(Instant::now());
    let data = loaded();
    let (rows, features) = (data.table.len(), data.feature_names.len());
    app.update(Msg::Train(TrainEvent::Loaded(data)));
    app.update(Msg::Train(TrainEvent::Started {
        detector: DetectorKind::Dagmm,
        rows,
        features,
        epochs: 20,
        members: 3,
        steps_per_epoch: 5,
        rescore_every: Some(2),
    }));
    let epoch = |app: &mut App, epoch: usize| {
        app.update(Msg::Train(TrainEvent::Epoch {
            epoch,
            losses: loss(epoch),
            aux: vec![0.6, 0.4],
            samples_per_sec: 123_456.0,
            elapsed_secs: 2.0 * epoch as f64,
        }));
    };
    app.update(Msg::Train(TrainEvent::MemberStarted {
        member: 1,
        members: 3,
    }));
    (1..=20).for_each(|e| epoch(&mut app, e));
    app.update(Msg::Train(TrainEvent::MemberStarted {
        member: 2,
        members: 3,
    }));
    (1..=4).for_each(|e| epoch(&mut app, e));
    // Each member's curves start afresh; progress counts the whole ensemble.
    assert_eq!(app.viewed_run().loss_history.len(), 4);
    assert_eq!(app.progress().fraction(0.0), 24.0 / 60.0);
    let mut scored = Arc::try_unwrap(scoring(rows, features, 4)).unwrap();
    scored.members = 2;
    app.update(Msg::Train(TrainEvent::Scored(Arc::new(scored))));
    app.message = None;
    let text = screen(&app, 160, 48);
    assert!(
        text.contains("member 2/3") && text.contains("epoch 5/20"),
        "{text}"
    );
    assert!(text.contains("DAGMM loss per epoch · model 2/3"), "{text}");
    assert!(text.contains("Ranked by score of 2 models"), "{text}");
    insta::assert_snapshot!("ensemble_160x48", render(&app, 160, 48).backend());
}

#[test]
fn marks_leave_training_and_the_refit_key_reports_changed_flags() {
    use dagmm_tui::train::Control;
    use dagmm_tui::ui::app::Effect;
    let mut app = trained_app(4);
    let top = app.table.visible[0];
    // Marking a row anomalous while training tells the worker to leave it out.
    let effects = app.update(key('a'));
    assert_eq!(
        effects,
        vec![Effect::Control(Control::Marks(Marked::anomalies(vec![
            top
        ])))]
    );
    assert_eq!(app.anomaly_rows(), vec![top]);
    // A normal mark is sent too (training holds it down), and is not left out.
    let effects = app.update(key('n'));
    let marked = app.marked_rows();
    assert_eq!(
        effects,
        vec![Effect::Control(Control::Marks(marked.clone()))]
    );
    assert_eq!((marked.anomalies, marked.normals.len()), (vec![top], 1));
    assert_eq!(app.anomaly_rows(), vec![top]);
    // The refit key sends the marks, then asks for a rescore.
    let effects = app.apply(Action::Rescore);
    assert_eq!(
        effects,
        vec![
            Effect::Control(Control::Marks(app.marked_rows())),
            Effect::Control(Control::Rescore)
        ]
    );
    // The new scores flag other rows: the footer says how many of the flagged changed.
    let flagged = app.table.flagged_count();
    let old = app.table.shown().unwrap().scoring.clone();
    let reversed: Vec<f64> = old.scores.iter().map(|s| -s).collect();
    let overlap = {
        let before: std::collections::HashSet<u32> = old.order[..flagged].iter().copied().collect();
        let after = Scoring::from_parts(
            DetectorKind::Dagmm,
            5,
            reversed.clone(),
            old.detail.clone(),
            Arc::new(FixedErrors(3)),
        );
        after.order[..flagged]
            .iter()
            .filter(|r| before.contains(r))
            .count()
    };
    app.update(Msg::Train(TrainEvent::Scored(Arc::new(
        Scoring::from_parts(
            DetectorKind::Dagmm,
            5,
            reversed,
            old.detail.clone(),
            Arc::new(FixedErrors(3)),
        ),
    ))));
    let message = app
        .message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default();
    assert_eq!(
        message,
        format!(
            "refit without 1 row(s) marked anomaly: {} of {flagged} flagged rows changed",
            flagged - overlap
        )
    );
}

#[test]
fn marks_from_an_earlier_session_teach_training_from_the_start() {
    use dagmm_tui::train::Control;
    use dagmm_tui::triage::Mark;
    use dagmm_tui::ui::app::Effect;
    let data = loaded();
    let mut marks = Marks::default();
    marks.set(data.table.rows[3].number, Some(Mark::Anomaly));
    marks.set(data.table.rows[7].number, Some(Mark::Normal));
    let mut app = App::new(config(), Keymap::default(), marks, None, Instant::now());
    let (rows, features) = (data.table.len(), data.feature_names.len());
    app.update(Msg::Train(TrainEvent::Loaded(data)));
    let effects = app.update(Msg::Train(TrainEvent::Started {
        detector: DetectorKind::Dagmm,
        rows,
        features,
        epochs: 20,
        members: 5,
        steps_per_epoch: 5,
        rescore_every: Some(2),
    }));
    assert_eq!(
        effects,
        vec![Effect::Control(Control::Marks(Marked {
            anomalies: vec![3],
            normals: vec![7],
            table: 0,
        }))]
    );
}

#[test]
fn marks_from_an_earlier_session_reach_a_checkpoint_sessions_feedback_layer() {
    use dagmm_tui::train::Control;
    use dagmm_tui::triage::Mark;
    use dagmm_tui::ui::app::Effect;
    let data = loaded();
    let mut marks = Marks::default();
    marks.set(data.table.rows[4].number, Some(Mark::Normal));
    let checkpoint = AppConfig {
        training: false,
        ..config()
    };
    let mut app = App::new(checkpoint, Keymap::default(), marks, None, Instant::now());
    let effects = app.update(Msg::Train(TrainEvent::Loaded(data)));
    assert_eq!(
        effects,
        vec![Effect::Control(Control::Marks(Marked {
            anomalies: vec![],
            normals: vec![4],
            table: 0,
        }))]
    );
}

#[test]
fn a_replaced_table_gets_the_marks_again_by_record_and_the_selection_follows_its_record() {
    use dagmm_tui::train::Control;
    use dagmm_tui::triage::Mark;
    use dagmm_tui::ui::app::Effect;
    let data = loaded();
    let mut app = app_at(Instant::now());
    app.update(Msg::Train(TrainEvent::Loaded(data.clone())));
    app.update(Msg::Train(TrainEvent::Finished {
        epochs_done: 1,
        stopped_early: false,
    }));
    let n = data.table.len();
    app.update(Msg::Train(TrainEvent::Scored(scoring(
        n,
        data.feature_names.len(),
        1,
    ))));
    // Mark record 9 anomalous and select record 5.
    app.marks
        .set(data.table.rows[8].number, Some(Mark::Anomaly));
    app.table.selected = Some(4);
    // The new table keeps every other row: record 9 is row 4 of it, record 5 row 2.
    let kept: Vec<usize> = (0..n).step_by(2).collect();
    let replaced = Arc::new(LoadedData {
        table: data.table.select(&kept),
        feature_names: data.feature_names.clone(),
        feature_columns: data.feature_columns.clone(),
        notes: vec!["ranked all rows".into()],
        model: data.model.clone(),
        detectors: data.detectors.clone(),
        checkpoint: None,
        table_id: 1,
        top_rows: 3,
    });
    let effects = app.update(Msg::Train(TrainEvent::Loaded(replaced)));
    assert_eq!(
        effects,
        vec![Effect::Control(Control::Marks(Marked {
            anomalies: vec![4],
            normals: vec![],
            table: 1,
        }))]
    );
    assert_eq!(app.table.selected, Some(2));
    assert!(app.table.scorings.is_empty(), "old row indices are gone");
}

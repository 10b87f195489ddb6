//! The worker thread's protocol: events arrive while training runs, controls are obeyed,
//! a checkpoint can be requested, and stop ends training early with a usable model.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dagmm_tui::data::{read_table, Encoder, ReadOptions, ScaleKind};
use dagmm_tui::model::{DagmmConfig, DetectorConfig, DetectorKind, EgbadConfig};
use dagmm_tui::train::{
    checkpoint, spawn, spawn_session, Control, DataContext, ModelSource, Rescoring, SessionPlan,
    TrainConfig, TrainEvent, WorkerHandle, WorkerOptions,
};

mod common;

/// Starts a headless worker on a `rows`-row sample in `dir`: 10,000 epochs (it is stopped
/// long before), `members` members. Returns the sample's path and the worker.
fn train_on_sample(dir: &Path, rows: usize, seed: u64, members: usize) -> (PathBuf, WorkerHandle) {
    let path = common::small_sample(dir, rows);
    let read = ReadOptions {
        label: Some("attack".into()),
        ..Default::default()
    };
    let table = read_table(&path, &read, None).unwrap();
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, _) = Encoder::fit(&table, &all, ScaleKind::Minmax).unwrap();
    let data = Arc::new(encoder.transform(&table, &all).matrix);
    let config = TrainConfig {
        epochs: 10_000,
        batch: 64,
        lr: 1e-3,
        seed,
        members,
    };
    let worker = spawn(
        DetectorConfig::Dagmm(DagmmConfig::default_for(data.cols)),
        config,
        data,
        DataContext { read, encoder },
    );
    (path, worker)
}

#[test]
fn pause_checkpoint_resume_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (_, worker) = train_on_sample(dir.path(), 800, 3, 2);
    let wait_for = |want: &dyn Fn(&TrainEvent) -> bool| loop {
        let event = worker
            .events
            .recv_timeout(Duration::from_secs(60))
            .expect("worker went silent");
        if let TrainEvent::Failed(e) = &event {
            panic!("training failed: {e}");
        }
        if want(&event) {
            return event;
        }
    };
    assert!(matches!(
        wait_for(&|e| matches!(e, TrainEvent::Started { .. })),
        TrainEvent::Started {
            rows: 800,
            members: 2,
            ..
        }
    ));
    assert!(matches!(
        wait_for(&|e| matches!(e, TrainEvent::MemberStarted { .. })),
        TrainEvent::MemberStarted {
            member: 1,
            members: 2
        }
    ));
    let first = wait_for(&|e| matches!(e, TrainEvent::Epoch { .. }));
    if let TrainEvent::Epoch {
        losses,
        aux: phi,
        samples_per_sec,
        ..
    } = first
    {
        assert!(losses[3].is_finite() && samples_per_sec > 0.0);
        assert!(
            (phi.iter().sum::<f64>() - 1.0).abs() < 1e-3,
            "φ sums to {}",
            phi.iter().sum::<f64>()
        );
    }
    worker.controls.send(Control::Pause).unwrap();
    wait_for(&|e| matches!(e, TrainEvent::Paused));
    let ckpt = dir.path().join("ckpt");
    worker
        .controls
        .send(Control::SaveCheckpoint(ckpt.clone()))
        .unwrap();
    worker.controls.send(Control::Resume).unwrap();
    wait_for(&|e| matches!(e, TrainEvent::Resumed));
    wait_for(&|e| matches!(e, TrainEvent::CheckpointSaved(_)));
    worker.controls.send(Control::Stop).unwrap();
    let finished = wait_for(&|e| matches!(e, TrainEvent::Finished { .. }));
    assert!(matches!(
        finished,
        TrainEvent::Finished {
            stopped_early: true,
            ..
        }
    ));
    let trained = worker.thread.join().unwrap().unwrap();
    // Stopped within the first member: the ensemble is that member as it stood.
    assert_eq!(trained.ensemble.members.len(), 1);
    let epochs_done = trained.ensemble.members[0].epochs_done;
    assert!((1..10_000).contains(&epochs_done), "{epochs_done}");
    // The checkpoint saved mid-training holds the member in training, ready to score.
    let loaded = checkpoint::load(&ckpt).unwrap();
    assert_eq!(loaded.meta.members.len(), 1);
    assert_eq!(loaded.ensemble.describe(), trained.ensemble.describe());
    assert_eq!(trained.scores.len(), 800);
}

#[test]
fn a_checkpoint_that_cannot_be_written_is_its_own_event() {
    let dir = tempfile::tempdir().unwrap();
    let (path, worker) = train_on_sample(dir.path(), 300, 1, 1);
    // A directory below a regular file cannot be created.
    let blocked = path.join("checkpoint");
    worker
        .controls
        .send(Control::SaveCheckpoint(blocked))
        .unwrap();
    let failed = loop {
        match worker.events.recv_timeout(Duration::from_secs(60)).unwrap() {
            TrainEvent::CheckpointFailed(message) => break message,
            TrainEvent::CheckpointSaved(dir) => panic!("saved to {}", dir.display()),
            _ => {}
        }
    };
    assert!(failed.starts_with("checkpoint not saved"), "{failed}");
    worker.controls.send(Control::Stop).unwrap();
    worker.thread.join().unwrap().unwrap();
}

/// Waits for the first event `want` accepts; a failure or a silent minute panics.
fn next_matching<T>(
    events: &std::sync::mpsc::Receiver<TrainEvent>,
    want: impl Fn(&TrainEvent) -> Option<T>,
) -> T {
    loop {
        let event = events
            .recv_timeout(Duration::from_secs(60))
            .expect("worker went silent");
        if let TrainEvent::Failed(e) = &event {
            panic!("session failed: {e}");
        }
        if let Some(found) = want(&event) {
            return found;
        }
    }
}

/// The detector of the next scoring event.
fn next_scored(events: &std::sync::mpsc::Receiver<TrainEvent>) -> DetectorKind {
    next_matching(events, |e| match e {
        TrainEvent::Scored(s) => Some(s.detector),
        _ => None,
    })
}

#[test]
fn side_by_side_session_trains_both_serves_both_and_reopens_from_one_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::small_sample(dir.path(), 300);
    let read = ReadOptions {
        label: Some("attack".into()),
        ..Default::default()
    };
    let train = |members| TrainConfig {
        epochs: 2,
        batch: 64,
        lr: 1e-3,
        seed: 5,
        members,
    };
    let session = spawn_session(SessionPlan {
        data: path.clone(),
        read: read.clone(),
        scale: ScaleKind::Minmax,
        model: ModelSource::Train(Box::new(move |width, _| {
            Ok(vec![
                (
                    DetectorConfig::Dagmm(DagmmConfig::default_for(width)),
                    train(2),
                ),
                (
                    DetectorConfig::Egbad(EgbadConfig::default_for(width)),
                    train(1),
                ),
            ])
        })),
        options: WorkerOptions {
            rescoring: Rescoring::Auto,
            start_paused: false,
        },
        keep_top: dagmm_tui::train::session::TOP_ROWS,
    });
    let detectors = next_matching(&session.events, |e| match e {
        TrainEvent::Loaded(l) => Some(l.detectors.clone()),
        _ => None,
    });
    assert_eq!(detectors, [DetectorKind::Dagmm, DetectorKind::Egbad]);
    // One after the other: each starts, trains and scores; training ends once, after both.
    let mut started = Vec::new();
    let mut scored = Vec::new();
    loop {
        match session
            .events
            .recv_timeout(Duration::from_secs(60))
            .unwrap()
        {
            TrainEvent::Started { detector, .. } => started.push(detector),
            TrainEvent::Scored(s) => scored.push(s.detector),
            TrainEvent::Finished { .. } => break,
            TrainEvent::Failed(e) => panic!("{e}"),
            _ => {}
        }
    }
    assert_eq!(started, [DetectorKind::Dagmm, DetectorKind::Egbad]);
    let first_egbad = scored
        .iter()
        .position(|&d| d == DetectorKind::Egbad)
        .unwrap();
    assert!(scored[..first_egbad]
        .iter()
        .all(|&d| d == DetectorKind::Dagmm));
    assert!(first_egbad > 0);
    // After training, one save writes both, one rescore refits and scores both.
    let ckpt = dir.path().join("pair");
    let send = |c| session.controls.send(c).unwrap();
    send(Control::SaveCheckpoint(ckpt.clone()));
    let saved = next_matching(&session.events, |e| match e {
        TrainEvent::CheckpointSaved(d) => Some(d.clone()),
        TrainEvent::CheckpointFailed(e) => panic!("{e}"),
        _ => None,
    });
    assert_eq!(saved, ckpt);
    send(Control::Marks(dagmm_tui::train::Marked::anomalies(vec![
        0, 1, 2,
    ])));
    send(Control::Rescore);
    let mut rescored = [next_scored(&session.events), next_scored(&session.events)];
    rescored.sort_by_key(|d| d.name());
    assert_eq!(rescored, [DetectorKind::Dagmm, DetectorKind::Egbad]);
    send(Control::Stop);
    let trained = session.thread.join().unwrap().unwrap();
    assert_eq!(trained.len(), 2);
    assert_eq!(trained[0].ensemble.members.len(), 2);
    assert_eq!(trained[1].ensemble.kind(), Some(DetectorKind::Egbad));
    // The pair reopens as a pair, or one of it by name; a single checkpoint is not a pair.
    let both = checkpoint::load_all(&ckpt, &[]).unwrap();
    let kinds: Vec<_> = both.iter().filter_map(|c| c.ensemble.kind()).collect();
    assert_eq!(kinds, [DetectorKind::Dagmm, DetectorKind::Egbad]);
    let egbad = checkpoint::load_all(&ckpt, &[DetectorKind::Egbad]).unwrap();
    assert_eq!(egbad.len(), 1);
    let single = ckpt.join("dagmm");
    let refused = checkpoint::load_all(&single, &[DetectorKind::Dagmm, DetectorKind::Egbad])
        .err()
        .unwrap();
    assert!(
        format!("{refused:#}").contains("one detector's models"),
        "{refused:#}"
    );
    let reopened = spawn_session(SessionPlan {
        data: path,
        read,
        scale: ScaleKind::Minmax,
        model: ModelSource::Checkpoint {
            dir: ckpt,
            expected: Vec::new(),
        },
        options: WorkerOptions::default(),
        keep_top: dagmm_tui::train::session::TOP_ROWS,
    });
    let mut scores = [next_scored(&reopened.events), next_scored(&reopened.events)];
    scores.sort_by_key(|d| d.name());
    assert_eq!(scores, [DetectorKind::Dagmm, DetectorKind::Egbad]);
    reopened.controls.send(Control::Stop).unwrap();
    assert_eq!(reopened.thread.join().unwrap().unwrap().len(), 2);
}

#[test]
fn a_sampled_session_ranks_every_row_of_the_file_and_its_table_gains_the_files_top() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::small_sample(dir.path(), 1200);
    let read = ReadOptions {
        label: Some("attack".into()),
        sample: Some(300),
        ..Default::default()
    };
    let train = TrainConfig {
        epochs: 2,
        batch: 64,
        lr: 1e-3,
        seed: 3,
        members: 1,
    };
    let session = spawn_session(SessionPlan {
        data: path.clone(),
        read,
        scale: ScaleKind::Minmax,
        model: ModelSource::Train(Box::new(move |width, _| {
            Ok(vec![
                (
                    DetectorConfig::Dagmm(DagmmConfig::default_for(width)),
                    train.clone(),
                ),
                (
                    DetectorConfig::Egbad(EgbadConfig::default_for(width)),
                    train.clone(),
                ),
            ])
        })),
        options: WorkerOptions {
            rescoring: Rescoring::Auto,
            start_paused: false,
        },
        keep_top: 40,
    });
    let first = next_matching(&session.events, |e| match e {
        TrainEvent::Loaded(l) => Some(l.clone()),
        _ => None,
    });
    assert_eq!(
        (first.table.len(), first.table.sampled_from),
        (300, Some(1200))
    );
    let replaced = next_matching(&session.events, |e| match e {
        TrainEvent::Loaded(l) if l.table_id == 1 => Some(l.clone()),
        _ => None,
    });
    let table = &replaced.table;
    assert_eq!(table.len(), 300 + replaced.top_rows);
    assert!(replaced.top_rows >= 40, "{} top rows", replaced.top_rows);
    let numbers: Vec<u64> = table.rows.iter().map(|r| r.number).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "file order");
    let scorings: Vec<Arc<dagmm_tui::train::Scoring>> = (0..2)
        .map(|_| {
            next_matching(&session.events, |e| match e {
                TrainEvent::Scored(s) => Some(s.clone()),
                _ => None,
            })
        })
        .collect();
    let ckpt = dir.path().join("ckpt");
    let send = |c| session.controls.send(c).unwrap();
    send(Control::SaveCheckpoint(ckpt.clone()));
    next_matching(&session.events, |e| match e {
        TrainEvent::CheckpointSaved(_) => Some(()),
        TrainEvent::CheckpointFailed(e) => panic!("{e}"),
        _ => None,
    });
    // Marks on the table that was replaced are ignored; marks on this one are learnt.
    let marked = |rows: Vec<u32>, table| dagmm_tui::train::Marked {
        anomalies: rows,
        normals: Vec::new(),
        table,
    };
    send(Control::Marks(marked(vec![0], 0)));
    send(Control::Marks(marked(vec![0, 1], 1)));
    let learnt = next_matching(&session.events, |e| match e {
        TrainEvent::Learned { marks, .. } => Some(*marks),
        _ => None,
    });
    assert_eq!(learnt, 2);
    send(Control::Stop);
    session.thread.join().unwrap().unwrap();

    // Every row of the file, scored by the saved models as `score` scores them.
    for ck in checkpoint::load_all(&ckpt, &[]).unwrap() {
        let kind = ck.ensemble.kind().unwrap();
        let scoring = scorings.iter().find(|s| s.detector == kind).unwrap();
        let mut file: Vec<(u64, f64)> = Vec::new();
        dagmm_tui::train::scoring::score_file(
            &path,
            &ck.meta.read,
            &ck.meta.encoder.schema,
            &ck.meta.encoder,
            &[&ck.ensemble],
            |chunk, scores| {
                let numbers = chunk.rows.iter().map(|r| r.number);
                file.extend(numbers.zip(scores[0].iter().copied()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!((file.len(), scoring.file_rows()), (1200, 1200));
        let score_of = |number: u64| file[number as usize - 1].1;
        for (row, r) in table.rows.iter().enumerate() {
            let s = score_of(r.number);
            assert!((scoring.scores[row] - s).abs() < 1e-9, "{kind} row {row}");
            let above = file.iter().filter(|f| f.1 > s).count();
            let tied = file.iter().filter(|f| f.1 == s).count();
            let rank = scoring.rank(row);
            assert!(
                (above + 1..=above + tied).contains(&rank),
                "{kind} record {}: rank {rank}, {above} rows above, {tied} tied",
                r.number
            );
        }
        // The file's top rows are all in the table, at its top.
        let mut by_score = file.clone();
        by_score.sort_by(|a, b| b.1.total_cmp(&a.1));
        let cut = by_score[39].1;
        for &(number, _) in by_score.iter().filter(|f| f.1 > cut) {
            assert!(
                numbers.binary_search(&number).is_ok(),
                "{kind} record {number}"
            );
        }
        // Flagging 5 % of the file flags the table rows ranked within its first 60.
        let within = (0..table.len()).filter(|&r| scoring.rank(r) <= 60).count();
        assert_eq!(scoring.flagged(0.05), within, "{kind}");
    }
}

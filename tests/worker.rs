//! The worker thread's protocol: events arrive while training runs, controls are obeyed,
//! a checkpoint can be requested, and stop ends training early with a usable model.

use std::sync::Arc;
use std::time::Duration;

use dagmm_tui::data::{read_table, Encoder, ReadOptions, ScaleKind};
use dagmm_tui::model::DagmmConfig;
use dagmm_tui::train::{checkpoint, spawn, Control, DataContext, TrainConfig, TrainEvent};

mod common;

#[test]
fn pause_checkpoint_resume_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::small_sample(dir.path(), 800);
    let read = ReadOptions {
        label: Some("attack".into()),
        ..Default::default()
    };
    let table = read_table(&path, &read, None).unwrap();
    let rows: Vec<usize> = (0..table.len()).collect();
    let (encoder, _) = Encoder::fit(&table, &rows, ScaleKind::Minmax).unwrap();
    let data = Arc::new(encoder.transform(&table, &rows).matrix);
    let config = TrainConfig {
        epochs: 10_000,
        batch: 64,
        lr: 1e-3,
        seed: 3,
    };
    let worker = spawn(
        DagmmConfig::default_for(data.cols),
        config,
        data,
        DataContext { read, encoder },
    );
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
        TrainEvent::Started { rows: 800, .. }
    ));
    let first = wait_for(&|e| matches!(e, TrainEvent::Epoch { .. }));
    if let TrainEvent::Epoch {
        loss,
        phi,
        samples_per_sec,
        ..
    } = first
    {
        assert!(loss.total.is_finite() && samples_per_sec > 0.0);
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
    assert!(trained.epochs_done >= 1 && trained.epochs_done < 10_000);
    let loaded = checkpoint::load(&ckpt).unwrap();
    assert_eq!(loaded.meta.model, trained.model.config);
    assert!(loaded.meta.gmm.factorise().is_ok());
}

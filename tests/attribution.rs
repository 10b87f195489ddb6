//! "Why flagged" by attribution: each column's contribution to a row's score relative to
//! the typical row, for both detectors, on trained ensembles.

use std::io::Write;
use std::sync::Arc;

use dagmm_tui::data::{read_table, Encoder, Matrix, ReadOptions, ScaleKind};
use dagmm_tui::model::{DagmmConfig, DetectorConfig, EgbadConfig, Ensemble};
use dagmm_tui::train::{member_of, Scoring, TrainConfig, Trainer};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A CSV of `rows` rows: five numeric columns and a categorical one, with the rows in
/// `anomalies` made anomalous by column `c2` alone (far above every other row's).
fn synthetic(rows: usize, anomalies: &[usize]) -> tempfile::NamedTempFile {
    let mut rng = StdRng::seed_from_u64(7);
    let mut file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    writeln!(file, "c0,c1,c2,c3,c4,proto").unwrap();
    for r in 0..rows {
        let mut v: Vec<f64> = (0..5).map(|_| rng.gen::<f64>()).collect();
        // Correlated columns, as real data has: c1 follows c0.
        v[1] = 0.7 * v[0] + 0.3 * v[1];
        if anomalies.contains(&r) {
            v[2] = 6.0 + rng.gen::<f64>();
        }
        let proto = ["tcp", "udp", "icmp"][rng.gen_range(0..3)];
        writeln!(
            file,
            "{:.4},{:.4},{:.4},{:.4},{:.4},{proto}",
            v[0], v[1], v[2], v[3], v[4]
        )
        .unwrap();
    }
    file.flush().unwrap();
    file
}

/// The encoded rows of `path` and each column's range of encoded features.
fn encoded(path: &std::path::Path) -> (Matrix, Vec<(String, std::ops::Range<usize>)>) {
    let table = read_table(path, &ReadOptions::default(), None).unwrap();
    let all: Vec<usize> = (0..table.len()).collect();
    let (encoder, _) = Encoder::fit(&table, &all, ScaleKind::Minmax).unwrap();
    (
        encoder.transform(&table, &all).matrix,
        encoder.feature_columns(),
    )
}

/// An ensemble of `members` trained for `epochs` on `data`, and its scoring.
fn trained(detector: DetectorConfig, data: &Arc<Matrix>, members: usize, epochs: usize) -> Scoring {
    let batch = 128;
    let mut ensemble = Ensemble::default();
    let mut calibrated = Vec::new();
    for m in 0..members {
        let config = TrainConfig {
            epochs,
            batch,
            lr: 1e-3,
            seed: m as u64,
            members,
        };
        let mut trainer = Trainer::new(detector.clone(), config, data.rows);
        for _ in 0..epochs {
            trainer.epoch(data, |_| true).unwrap();
        }
        let (member, scores, _) = member_of(&trainer, data, None).unwrap();
        ensemble.members.push(member);
        calibrated.push(scores);
    }
    let scores = dagmm_tui::model::ensemble::mean_scores(&calibrated);
    Scoring::of_ensemble(&ensemble, scores, data.clone())
}

#[test]
fn a_rows_attribution_adds_up_to_its_score_minus_the_typical_rows_for_both_detectors() {
    let file = synthetic(400, &[3, 50, 200]);
    let (data, columns) = encoded(file.path());
    assert_eq!(columns.len(), 6, "five numeric columns and one categorical");
    assert_eq!(
        columns[5].1.len(),
        3,
        "proto's three one-hot levels are one column"
    );
    let data = Arc::new(data);
    let ranges: Vec<_> = columns.iter().map(|(_, r)| r.clone()).collect();
    let dagmm = DetectorConfig::Dagmm(DagmmConfig::default_for(data.cols));
    let egbad = DetectorConfig::Egbad(EgbadConfig::default_for(data.cols));
    let mut rng = StdRng::seed_from_u64(1);
    for detector in [dagmm, egbad] {
        let scoring = trained(detector.clone(), &data, 2, 3);
        assert!(scoring.explains_ensemble);
        for _ in 0..10 {
            let row = rng.gen_range(0..data.rows);
            let why = scoring.why(row, &ranges).unwrap();
            // The explained score is the table's.
            assert!(
                (why.score - scoring.scores[row]).abs() < 1e-9 * (1.0 + why.score.abs()),
                "{detector:?} row {row}: {} vs {}",
                why.score,
                scoring.scores[row]
            );
            let difference = why.score - why.reference_score;
            let sum: f64 = why.contributions.iter().sum();
            assert!(
                (sum - difference).abs() <= 0.01 * difference.abs().max(1e-9),
                "{detector:?} row {row}: contributions sum to {sum}, the scores differ by {difference}"
            );
        }
    }
}

#[test]
fn the_column_that_makes_the_anomalies_comes_first_in_their_why() {
    let anomalies: Vec<usize> = (0..10).map(|i| 37 + 61 * i).collect();
    let file = synthetic(800, &anomalies);
    let (data, columns) = encoded(file.path());
    let data = Arc::new(data);
    let ranges: Vec<_> = columns.iter().map(|(_, r)| r.clone()).collect();
    let explained_by_c2 = |scoring: &Scoring, rows: &[usize]| {
        (rows.iter())
            .filter(|&&row| {
                let why = scoring.why(row, &ranges).unwrap();
                columns[why.ranked()[0]].0 == "c2"
            })
            .count()
    };
    let dagmm = DetectorConfig::Dagmm(DagmmConfig::default_for(data.cols));
    let scoring = trained(dagmm, &data, 2, 20);
    let top: Vec<usize> = scoring.order[..10].iter().map(|&r| r as usize).collect();
    let in_top = explained_by_c2(&scoring, &top);
    assert!(
        in_top >= 9,
        "DAGMM: c2 first in the why of {in_top} of the top 10 rows ({top:?}, anomalies {anomalies:?})"
    );
    // EGBAD explains the same rows by c2 too. Its ranking is not asserted: trained as this
    // helper trains it, it ranks these rows anywhere from 1st to 379th of 800 (two in its top 10).
    let egbad = DetectorConfig::Egbad(EgbadConfig::default_for(data.cols));
    let scoring = trained(egbad, &data, 2, 20);
    let of_anomalies = explained_by_c2(&scoring, &anomalies);
    assert!(
        of_anomalies >= 9,
        "EGBAD: c2 first in the why of {of_anomalies} of the 10 anomalies"
    );
}

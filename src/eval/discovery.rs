//! The discovery protocol (Das et al., "Active Anomaly Discovery"): a simulated analyst is
//! shown the top unmarked row, marks it by its true label, the model is updated exactly
//! as the workbench updates it, and so on up to the largest budget. `found@B` counts the
//! true anomalies among the first B rows shown, for the loop and for two static rankings
//! (the trained ensemble's and the in-run IsolationForest's top B).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::metrics::evaluate;
use crate::train::{ranking, FeedbackLayer};

/// What the loop found, per method and budget, and how the unmarked rows rank at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// `feedback`, `static`, `iforest` → budget (as text) → true anomalies among the first
    /// B rows shown.
    pub found: BTreeMap<String, BTreeMap<String, usize>>,
    /// AUROC and AUPRC of the rows left unmarked after the largest budget, by the loop's
    /// final scores.
    pub unmarked_auroc: f64,
    pub unmarked_auprc: f64,
    /// Fine-tunes of the networks during the loop.
    pub fine_tunes: usize,
}

/// True anomalies among the first `b` rows of `order` for each budget.
fn counts(order: &[usize], truth: &[bool], budgets: &[usize]) -> BTreeMap<String, usize> {
    budgets
        .iter()
        .map(|&b| {
            let found = order.iter().take(b).filter(|&&r| truth[r]).count();
            (b.to_string(), found)
        })
        .collect()
}

/// Runs the loop. `layer` starts from the detector's scores; after every mark it learns
/// the marks so far, and every `fine_tune_every` marks (0: never) `fine_tune(marks)` returns
/// the detector's new scores, which the layer takes as its base.
pub fn discover(
    mut layer: FeedbackLayer,
    static_scores: &[f64],
    forest_scores: &[f64],
    truth: &[bool],
    budgets: &[usize],
    fine_tune_every: usize,
    mut fine_tune: impl FnMut(&[(usize, bool)]) -> Result<Vec<f64>>,
) -> Result<Discovery> {
    let largest = budgets.iter().copied().max().unwrap_or(0).min(truth.len());
    let mut shown = Vec::with_capacity(largest);
    let mut marked = vec![false; truth.len()];
    let mut marks: Vec<(usize, bool)> = Vec::new();
    let mut fine_tunes = 0;
    while shown.len() < largest {
        let scores = layer.scores();
        let next = ranking(&scores)
            .into_iter()
            .map(|r| r as usize)
            .find(|&r| !marked[r])
            .expect("an unmarked row is left");
        shown.push(next);
        marked[next] = true;
        marks.push((next, truth[next]));
        if fine_tune_every > 0 && marks.len().is_multiple_of(fine_tune_every) {
            let base = fine_tune(&marks)?;
            layer.set_base(&base);
            fine_tunes += 1;
        }
        layer.learn(&marks);
    }
    let order_of =
        |s: &[f64]| -> Vec<usize> { ranking(s).into_iter().map(|r| r as usize).collect() };
    let mut found = BTreeMap::new();
    found.insert("feedback".to_string(), counts(&shown, truth, budgets));
    found.insert(
        "static".to_string(),
        counts(&order_of(static_scores), truth, budgets),
    );
    found.insert(
        "iforest".to_string(),
        counts(&order_of(forest_scores), truth, budgets),
    );
    let (rest, rest_truth): (Vec<f64>, Vec<bool>) = layer
        .scores()
        .into_iter()
        .zip(truth)
        .zip(&marked)
        .filter(|(_, &m)| !m)
        .map(|((s, &t), _)| (s, t))
        .unzip();
    let left = evaluate(&rest, &rest_truth, 0.0);
    Ok(Discovery {
        found,
        unmarked_auroc: left.auroc,
        unmarked_auprc: left.auprc,
        fine_tunes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Matrix;

    #[test]
    fn counts_follow_the_rows_shown_by_hand() {
        // Ten rows; anomalies are 1, 4 and 7. The detector ranks 9, 1, 8, 4, ... (score 10 − rank).
        let truth: Vec<bool> = (0..10).map(|r| [1, 4, 7].contains(&r)).collect();
        let order = [9usize, 1, 8, 4, 0, 7, 2, 3, 5, 6];
        let mut scores = vec![0.0; 10];
        for (rank, &r) in order.iter().enumerate() {
            scores[r] = 10.0 - rank as f64;
        }
        let forest: Vec<f64> = (0..10).map(|r| r as f64).collect(); // 9, 8, 7, ...
        let x = Matrix {
            rows: 10,
            cols: 1,
            data: (0..10).map(|r| r as f32).collect(),
        };
        let layer = FeedbackLayer::new(&scores, &x, 0);
        let found = discover(layer, &scores, &forest, &truth, &[2, 4], 0, |_| {
            unreachable!("no fine-tune")
        })
        .unwrap();
        // Static: rows 9, 1 → 1 anomaly in the top 2; 9, 1, 8, 4 → 2 in the top 4.
        assert_eq!(found.found["static"]["2"], 1);
        assert_eq!(found.found["static"]["4"], 2);
        // IsolationForest's order 9, 8, 7, 6: 0 then 1.
        assert_eq!(found.found["iforest"]["2"], 0);
        assert_eq!(found.found["iforest"]["4"], 1);
        // The loop shows row 9 first (the detector's top) and never shows a row twice.
        assert!(found.found["feedback"]["4"] >= 1);
        assert_eq!(found.fine_tunes, 0);
        // Fine-tuning every 2 marks happens twice in 4 marks and feeds new scores back.
        let layer = FeedbackLayer::new(&scores, &x, 0);
        let mut calls = 0;
        let tuned = discover(layer, &scores, &forest, &truth, &[4], 2, |marks| {
            calls += 1;
            assert_eq!(marks.len(), 2 * calls);
            Ok(scores.clone())
        })
        .unwrap();
        assert_eq!((tuned.fine_tunes, calls), (2, 2));
    }
}

//! Detection metrics for the anomaly class: precision/recall/F1 at a contamination
//! threshold, and the threshold-free AUROC and AUPRC (average precision).

use serde::Serialize;

/// How well a score separates anomalies from normal rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub auroc: f64,
    pub auprc: f64,
    /// Rows flagged (the top `contamination` share by score).
    pub flagged: usize,
}

/// Scores `scores` (high = anomalous) against `truth`, flagging the top
/// `round(contamination × n)` rows.
pub fn evaluate(scores: &[f64], truth: &[bool], contamination: f64) -> Detection {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let flagged = ((contamination * n as f64).round() as usize).min(n);
    let positives = truth.iter().filter(|&&t| t).count();
    let hits = order[..flagged].iter().filter(|&&i| truth[i]).count();
    let (precision, recall, f1) = precision_recall_f1(hits, flagged, positives);
    Detection {
        precision,
        recall,
        f1,
        auroc: auroc(scores, truth),
        auprc: average_precision(scores, truth, &order),
        flagged,
    }
}

/// Precision, recall and F1 when `flagged` rows are flagged, `hits` of them anomalies,
/// out of `positives` anomalies in all (each 0 when undefined).
pub fn precision_recall_f1(hits: usize, flagged: usize, positives: usize) -> (f64, f64, f64) {
    let precision = if flagged > 0 {
        hits as f64 / flagged as f64
    } else {
        0.0
    };
    let recall = if positives > 0 {
        hits as f64 / positives as f64
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (precision, recall, f1)
}

/// Area under the ROC curve by the Mann–Whitney statistic, ties counted half.
pub fn auroc(scores: &[f64], truth: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    auroc_ranked(scores, truth, |p| order[p])
}

/// [`auroc`] for rows already ranked: `at(p)` is the row at position `p` of a descending
/// ranking with equal scores adjacent (a workbench scoring), so nothing is sorted again.
pub fn auroc_ranked(scores: &[f64], truth: &[bool], at: impl Fn(usize) -> usize) -> f64 {
    let n = scores.len();
    let (mut rank_sum, mut i) = (0f64, 0usize);
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[at(j + 1)] == scores[at(i)] {
            j += 1;
        }
        // Ascending ranks of descending positions i..=j are n−j ..= n−i.
        let average_rank = n as f64 - (i + j) as f64 / 2.0;
        rank_sum += (i..=j).filter(|&p| truth[at(p)]).count() as f64 * average_rank;
        i = j + 1;
    }
    let positives = truth.iter().filter(|&&t| t).count() as f64;
    let negatives = truth.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Average precision over `order` (descending score), tied scores treated as one step.
fn average_precision(scores: &[f64], truth: &[bool], order: &[usize]) -> f64 {
    let positives = truth.iter().filter(|&&t| t).count();
    if positives == 0 {
        return f64::NAN;
    }
    let (mut seen, mut hits, mut area, mut i) = (0usize, 0usize, 0f64, 0usize);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let group_hits = order[i..=j].iter().filter(|&&k| truth[k]).count();
        seen += j - i + 1;
        hits += group_hits;
        area += group_hits as f64 / positives as f64 * (hits as f64 / seen as f64);
        i = j + 1;
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_rankings() {
        let truth = [true, true, false, false, false];
        let good = [5.0, 4.0, 1.0, 2.0, 3.0];
        let d = evaluate(&good, &truth, 0.4);
        assert_eq!(
            (d.precision, d.recall, d.f1, d.auroc, d.auprc),
            (1.0, 1.0, 1.0, 1.0, 1.0)
        );
        let bad: Vec<f64> = good.iter().map(|v| -v).collect();
        let d = evaluate(&bad, &truth, 0.4);
        assert_eq!((d.f1, d.auroc), (0.0, 0.0));
    }

    #[test]
    fn auroc_counts_ties_half_and_matches_a_hand_computed_case() {
        assert_eq!(auroc(&[1.0, 1.0], &[true, false]), 0.5);
        // positives at 0.8, 0.4; negatives 0.6, 0.2: pairs won 3 of 4.
        assert_eq!(
            auroc(&[0.8, 0.4, 0.6, 0.2], &[true, true, false, false]),
            0.75
        );
    }

    #[test]
    fn average_precision_hand_computed() {
        // ranking: P N P → precision at hits 1/1 and 2/3 → AP = (1 + 2/3) / 2.
        let ap = evaluate(&[3.0, 2.0, 1.0], &[true, false, true], 0.5).auprc;
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn ranked_auroc_agrees_with_sorting_auroc_on_ties() {
        let scores = [0.3, 0.9, 0.3, 0.1, 0.9, 0.5, 0.3];
        let truth = [true, false, false, true, true, false, true];
        // Descending, ties kept in row order (as a workbench scoring ranks them).
        let order = [1usize, 4, 5, 0, 2, 6, 3];
        let ranked = auroc_ranked(&scores, &truth, |p| order[p]);
        assert!((ranked - auroc(&scores, &truth)).abs() < 1e-12);
        // 12 (anomaly, normal) pairs: 2 won, 3 tied → 3.5 / 12.
        assert!((ranked - 3.5 / 12.0).abs() < 1e-12, "{ranked}");
    }
}

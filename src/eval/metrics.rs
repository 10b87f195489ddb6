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

/// Spearman's rank correlation between two scorings of the same rows, each given with
/// its descending ranking (`order`, equal scores adjacent); tied rows share their average
/// rank. How alike two detectors order the rows: 1 the same order, 0 unrelated, −1
/// reversed; NaN when either scoring is constant.
pub fn spearman(a: &[f64], a_order: &[u32], b: &[f64], b_order: &[u32]) -> f64 {
    let (ra, rb) = (average_ranks(a, a_order), average_ranks(b, b_order));
    let n = ra.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    // Both rank vectors have the same mean, (n − 1) / 2.
    let mean = (n - 1.0) / 2.0;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        let (dx, dy) = (x - mean, y - mean);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    cov / (va * vb).sqrt()
}

/// 0-based position of each row in `order`, rows of equal score sharing their mean position.
fn average_ranks(scores: &[f64], order: &[u32]) -> Vec<f64> {
    let n = order.len();
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && scores[order[j] as usize] == scores[order[i] as usize] {
            j += 1;
        }
        let shared = (i + j - 1) as f64 / 2.0;
        for &row in &order[i..j] {
            ranks[row as usize] = shared;
        }
        i = j;
    }
    ranks
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

    fn descending(scores: &[f64]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..scores.len() as u32).collect();
        order.sort_by(|&x, &y| scores[y as usize].total_cmp(&scores[x as usize]));
        order
    }

    #[test]
    fn spearman_is_one_for_any_monotone_map_and_minus_one_reversed() {
        let a = [0.1, 5.0, 2.0, 3.0, -1.0];
        let b: Vec<f64> = a.iter().map(|x: &f64| x.exp() * 10.0).collect();
        let c: Vec<f64> = a.iter().map(|x| -x).collect();
        let (oa, ob, oc) = (descending(&a), descending(&b), descending(&c));
        assert!((spearman(&a, &oa, &b, &ob) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &oa, &c, &oc) + 1.0).abs() < 1e-12);
        let flat = [1.0; 5];
        assert!(spearman(&a, &oa, &flat, &descending(&flat)).is_nan());
    }

    #[test]
    fn spearman_gives_ties_their_average_rank() {
        // Ranks (descending, 0-based) with ties averaged: a = [0, 1.5, 1.5, 3], b = [0, 1, 2, 3].
        let a = [4.0, 2.0, 2.0, 1.0];
        let b = [4.0, 3.0, 2.0, 1.0];
        let expected = {
            let ra = [0.0, 1.5, 1.5, 3.0];
            let rb = [0.0, 1.0, 2.0, 3.0];
            let m = 1.5;
            let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - m) * (y - m)).sum();
            let va: f64 = ra.iter().map(|x| (x - m) * (x - m)).sum();
            let vb: f64 = rb.iter().map(|y| (y - m) * (y - m)).sum();
            cov / (va * vb).sqrt()
        };
        let got = spearman(&a, &descending(&a), &b, &descending(&b));
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        assert!(got < 1.0);
    }

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

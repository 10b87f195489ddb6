//! The ranked table's state: the latest scoring of each detector, which one orders the
//! table, the filter, the threshold, the selection and the freeze. It knows rows only as
//! indices: whether a row is marked or matches a search comes from its caller, which keeps
//! this state testable without a file or a terminal.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::eval::metrics::{auroc_ranked, precision_recall_f1, spearman};
use crate::train::{DetectorKind, Scoring};
use crate::ui::histogram::Histogram;

/// Which rows the table lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    Flagged,
    Marked,
    Unmarked,
}

impl Filter {
    fn next(self) -> Filter {
        match self {
            Filter::All => Filter::Flagged,
            Filter::Flagged => Filter::Marked,
            Filter::Marked => Filter::Unmarked,
            Filter::Unmarked => Filter::All,
        }
    }

    /// The word shown in the table title.
    pub fn name(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Flagged => "flagged",
            Filter::Marked => "marked",
            Filter::Unmarked => "unmarked",
        }
    }
}

/// The label column as ground truth for live metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// Escaped label value of the anomaly class.
    pub positive: String,
    pub is_anomaly: Vec<bool>,
    pub positives: usize,
}

/// Detection quality at the current threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub auroc: f64,
}

/// How far two detectors agree: the rows both flag at the current threshold, and how alike
/// they order all rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Rows in both flagged sets.
    pub both_flagged: usize,
    /// Rows each flags (the same count for both: one contamination threshold).
    pub flagged: usize,
    /// Spearman's rank correlation over every row.
    pub spearman: f64,
}

/// One detector's scores as the table shows them, with what is derived from them once.
pub struct Shown {
    pub scoring: Arc<Scoring>,
    pub at: Instant,
    /// Anomalies among the first i rows of the ranking (prefix counts), with labels.
    hits: Vec<u32>,
    pub auroc: Option<f64>,
    /// The scores' distribution, for the distribution pane.
    pub histogram: Histogram,
}

impl Shown {
    fn new(scoring: Arc<Scoring>, at: Instant, truth: Option<&Truth>) -> Self {
        let (hits, auroc) = match truth {
            // Rows that are a sample and the file's top would give biased metrics.
            Some(t) if t.is_anomaly.len() == scoring.len() && scoring.file.is_none() => {
                let mut hits = Vec::with_capacity(scoring.len() + 1);
                let mut count = 0u32;
                hits.push(0);
                for &row in &scoring.order {
                    count += u32::from(t.is_anomaly[row as usize]);
                    hits.push(count);
                }
                let order = &scoring.order;
                let auroc = auroc_ranked(&scoring.scores, &t.is_anomaly, |p| order[p] as usize);
                (hits, Some(auroc))
            }
            _ => (Vec::new(), None),
        };
        Shown {
            histogram: Histogram::of(&scoring.scores),
            scoring,
            at,
            hits,
            auroc,
        }
    }

    /// The detector that scored.
    pub fn detector(&self) -> DetectorKind {
        self.scoring.detector
    }
}

/// What the table's caller knows about rows: which are marked, and the labels if any.
pub struct RowFacts<'a> {
    pub marked: &'a dyn Fn(u32) -> bool,
    pub truth: Option<&'a Truth>,
}

/// The ranked table's state (see the module docs).
pub struct RankedView {
    /// The latest scoring of each detector, in the order they first arrived.
    pub scorings: Vec<Shown>,
    /// Index into `scorings` of the one that orders the table.
    pub rank_by: usize,
    /// Newer scorings held back while the table is frozen, at most one per detector.
    pending: Vec<Arc<Scoring>>,
    pub frozen: bool,
    pub filter: Filter,
    /// Row indices listed, in the order of the ranking scoring.
    pub visible: Vec<u32>,
    /// The selected row, by row index: stays on the same row when the ranking changes,
    /// once the user has moved it (until then it stays on the top row).
    pub selected: Option<u32>,
    selection_moved: bool,
    /// First listed row drawn (kept by the table pane so the selection stays in view).
    pub offset: Cell<usize>,
    /// Rows the table pane showed last frame (for page up/down).
    pub page: Cell<usize>,
    /// Share of rows flagged.
    pub contamination: f64,
    pub metrics: Option<LiveMetrics>,
    /// Set when two detectors have scored.
    pub agreement: Option<Agreement>,
}

/// Whether a scoring reached the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Shown,
    /// The table is frozen: the scoring waits for the unfreeze.
    HeldBack,
}

impl RankedView {
    /// An empty table flagging the top `contamination` share.
    pub fn new(contamination: f64) -> Self {
        RankedView {
            scorings: Vec::new(),
            rank_by: 0,
            pending: Vec::new(),
            frozen: false,
            filter: Filter::All,
            visible: Vec::new(),
            selected: None,
            selection_moved: false,
            offset: Cell::new(0),
            page: Cell::new(10),
            contamination,
            metrics: None,
            agreement: None,
        }
    }

    /// Forgets every scoring when the table's rows are replaced (their indices mean other
    /// rows now), keeping the threshold and filter; `selected` is the selected row's index
    /// in the new table. A frozen ranking thaws: the rows it froze are gone.
    pub fn new_rows(&mut self, selected: Option<u32>) {
        let moved = self.selection_moved && selected.is_some();
        *self = RankedView {
            filter: self.filter,
            selected,
            selection_moved: moved,
            page: Cell::new(self.page.get()),
            ..RankedView::new(self.contamination)
        };
    }

    /// The scoring that orders the table.
    pub fn shown(&self) -> Option<&Shown> {
        self.scorings.get(self.rank_by)
    }

    /// The first other detector's scoring of the same rows (the table's second rank column).
    pub fn other(&self) -> Option<&Shown> {
        let rows = self.shown()?.scoring.len();
        self.scorings
            .iter()
            .enumerate()
            .find(|(i, s)| *i != self.rank_by && s.scoring.len() == rows)
            .map(|(_, s)| s)
    }

    /// Takes a new scoring: shown now, or held back while the table is frozen.
    pub fn receive(&mut self, scoring: Arc<Scoring>, now: Instant, facts: &RowFacts) -> Arrival {
        if self.frozen && !self.scorings.is_empty() {
            self.pending.retain(|p| p.detector != scoring.detector);
            self.pending.push(scoring);
            return Arrival::HeldBack;
        }
        self.show(scoring, now, facts);
        Arrival::Shown
    }

    fn show(&mut self, scoring: Arc<Scoring>, now: Instant, facts: &RowFacts) {
        let shown = Shown::new(scoring, now, facts.truth);
        match self
            .scorings
            .iter()
            .position(|s| s.detector() == shown.detector())
        {
            Some(i) => self.scorings[i] = shown,
            None => self.scorings.push(shown),
        }
        self.agreement = self.pair().map(|(a, b)| Agreement {
            both_flagged: 0,
            flagged: 0,
            spearman: spearman(
                &a.scoring.scores,
                &a.scoring.order,
                &b.scoring.scores,
                &b.scoring.order,
            ),
        });
        self.refresh(facts);
    }

    /// The first two detectors' scorings, when both have scored the same rows.
    fn pair(&self) -> Option<(&Shown, &Shown)> {
        match self.scorings.as_slice() {
            [a, b, ..] if a.scoring.len() == b.scoring.len() => Some((a, b)),
            _ => None,
        }
    }

    /// Freezes or unfreezes the ranking; on unfreezing, the held-back scorings are shown.
    /// Returns `true` when something held back was shown.
    pub fn toggle_freeze(&mut self, now: Instant, facts: &RowFacts) -> bool {
        self.frozen = !self.frozen;
        if self.frozen {
            return false;
        }
        let pending = std::mem::take(&mut self.pending);
        let any = !pending.is_empty();
        for scoring in pending {
            self.show(scoring, now, facts);
        }
        any
    }

    /// Orders the table by the next detector's score; the selection stays on its row.
    /// Returns the detector now ranking, `None` with fewer than two scored.
    pub fn cycle_rank_by(&mut self, facts: &RowFacts) -> Option<DetectorKind> {
        if self.scorings.len() < 2 {
            return None;
        }
        self.rank_by = (self.rank_by + 1) % self.scorings.len();
        self.refresh(facts);
        self.shown().map(Shown::detector)
    }

    /// Lists the next filter's rows.
    pub fn cycle_filter(&mut self, facts: &RowFacts) {
        self.filter = self.filter.next();
        self.refresh(facts);
    }

    /// Rows flagged at the current threshold.
    pub fn flagged_count(&self) -> usize {
        self.shown()
            .map_or(0, |s| s.scoring.flagged(self.contamination))
    }

    /// `true` when `row` is within the flagged share of the ranking scoring.
    pub fn is_flagged(&self, row: usize) -> bool {
        self.shown()
            .is_some_and(|s| (s.scoring.position[row] as usize) < self.flagged_count())
    }

    /// The rows flagged now, most anomalous first.
    pub fn flagged_rows(&self) -> Vec<u32> {
        self.shown().map_or_else(Vec::new, |s| {
            s.scoring.order[..self.flagged_count()].to_vec()
        })
    }

    /// Recomputes the listed rows, the metrics and the agreement after scores, filter,
    /// marks or threshold changed; the selection stays on its row when that row is still
    /// listed (or on the top row if the user never moved it).
    pub fn refresh(&mut self, facts: &RowFacts) {
        let flagged = self.flagged_count();
        let Some(shown) = self.shown() else {
            return;
        };
        let order = &shown.scoring.order;
        let visible = match self.filter {
            Filter::All => order.clone(),
            Filter::Flagged => order[..flagged].to_vec(),
            Filter::Marked => order
                .iter()
                .copied()
                .filter(|&r| (facts.marked)(r))
                .collect(),
            Filter::Unmarked => order
                .iter()
                .copied()
                .filter(|&r| !(facts.marked)(r))
                .collect(),
        };
        self.metrics = match (facts.truth, shown.auroc) {
            (Some(truth), Some(auroc)) => {
                let (precision, recall, f1) =
                    precision_recall_f1(shown.hits[flagged] as usize, flagged, truth.positives);
                Some(LiveMetrics {
                    precision,
                    recall,
                    f1,
                    auroc,
                })
            }
            _ => None,
        };
        let both_flagged = self.pair().map(|(a, b)| {
            a.scoring.order[..flagged]
                .iter()
                .filter(|&&r| (b.scoring.position[r as usize] as usize) < flagged)
                .count()
        });
        if let (Some(agreement), Some(both)) = (&mut self.agreement, both_flagged) {
            agreement.both_flagged = both;
            agreement.flagged = flagged;
        }
        self.visible = visible;
        let keep = self.selected.and_then(|r| self.visible_index(r));
        if keep.is_none() || !self.selection_moved {
            self.selected = self.visible.first().copied();
        }
    }

    /// Index of `row` in the listed rows (they are in ranking order, so a binary search).
    pub fn visible_index(&self, row: u32) -> Option<usize> {
        let scoring = &self.shown()?.scoring;
        let target = scoring.position[row as usize];
        self.visible
            .binary_search_by_key(&target, |&r| scoring.position[r as usize])
            .ok()
    }

    /// Selects `row` on the user's behalf: from now on the selection follows its row.
    pub fn select(&mut self, row: u32) {
        self.selected = Some(row);
        self.selection_moved = true;
    }

    /// Keeps the selection on its row from now on (the inspected row must not change
    /// under the user at the next rescore).
    pub fn hold_selection(&mut self) {
        self.selection_moved = true;
    }

    /// Moves the selection `delta` listed rows, clamped to the list.
    pub fn move_selection(&mut self, delta: isize) {
        if self.visible.is_empty() {
            return;
        }
        let current = self
            .selected
            .and_then(|r| self.visible_index(r))
            .unwrap_or(0);
        let target = (current as isize)
            .saturating_add(delta)
            .clamp(0, self.visible.len() as isize - 1);
        self.select(self.visible[target as usize]);
    }

    /// After `row`'s mark changed: under a marked/unmarked filter the row may leave the
    /// list, and the row that took its place is selected; otherwise, with `advance`, the
    /// selection moves down one.
    pub fn after_mark(&mut self, row: u32, advance: bool, facts: &RowFacts) {
        let index = self.visible_index(row);
        if matches!(self.filter, Filter::Marked | Filter::Unmarked) {
            self.refresh(facts);
            if let Some(i) = index {
                if self.visible_index(row).is_none() && !self.visible.is_empty() {
                    self.selected = Some(self.visible[i.min(self.visible.len() - 1)]);
                }
            }
        } else if advance {
            self.move_selection(1);
        }
    }

    /// Selects the first unmarked listed row below the selection; `None` when there is none.
    pub fn next_unmarked(&mut self, facts: &RowFacts) -> Option<u32> {
        let start = self
            .selected
            .and_then(|r| self.visible_index(r))
            .map_or(0, |i| i + 1);
        let found = self.visible[start.min(self.visible.len())..]
            .iter()
            .copied()
            .find(|&r| !(facts.marked)(r))?;
        self.select(found);
        Some(found)
    }

    /// Selects the first listed row after the selection for which `matches` holds,
    /// wrapping round to the top; `None` when no listed row matches.
    pub fn find_next(&mut self, matches: impl Fn(u32) -> bool) -> Option<u32> {
        let start = self
            .selected
            .and_then(|r| self.visible_index(r))
            .map_or(0, |i| i + 1);
        let n = self.visible.len();
        let found = (0..n)
            .map(|k| self.visible[(start + k) % n])
            .find(|&r| matches(r))?;
        self.select(found);
        Some(found)
    }

    /// Selects `row`, listing every row first if the filter hides it.
    pub fn reveal(&mut self, row: u32, facts: &RowFacts) {
        if self.visible_index(row).is_none() {
            self.filter = Filter::All;
            self.refresh(facts);
        }
        self.select(row);
    }

    /// Flags more (`direction` > 0) or fewer rows: steps of 0.1 % below 1 %, 1 % above.
    pub fn step_threshold(&mut self, direction: f64, facts: &RowFacts) {
        let pct = self.contamination * 100.0;
        let step = if pct < 1.0 || (pct <= 1.0 + 1e-9 && direction < 0.0) {
            0.1
        } else {
            1.0
        };
        let next = ((pct + direction * step) / step).round() * step;
        self.contamination = (next / 100.0).clamp(0.0, 1.0);
        self.refresh(facts);
    }

    /// How many of the rows flagged now were not in `before`.
    pub fn newly_flagged(&self, before: &[u32]) -> usize {
        let was: HashSet<u32> = before.iter().copied().collect();
        self.flagged_rows()
            .iter()
            .filter(|r| !was.contains(r))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RowDetail;
    use crate::train::NoExplanation;

    fn scoring(detector: DetectorKind, scores: Vec<f64>) -> Arc<Scoring> {
        Arc::new(Scoring::from_parts(
            detector,
            1,
            scores,
            RowDetail::default(),
            Arc::new(NoExplanation),
        ))
    }

    /// Row r scores 100 − r: the ranking is file order.
    fn descending(rows: usize) -> Vec<f64> {
        (0..rows).map(|r| 100.0 - r as f64).collect()
    }

    fn no_marks(_: u32) -> bool {
        false
    }

    fn facts<'a>(marked: &'a dyn Fn(u32) -> bool) -> RowFacts<'a> {
        RowFacts {
            marked,
            truth: None,
        }
    }

    fn view(rows: usize, contamination: f64) -> RankedView {
        let mut view = RankedView::new(contamination);
        let arrival = view.receive(
            scoring(DetectorKind::Dagmm, descending(rows)),
            Instant::now(),
            &facts(&no_marks),
        );
        assert_eq!(arrival, Arrival::Shown);
        view
    }

    #[test]
    fn threshold_steps_by_a_tenth_below_one_percent_and_by_one_above() {
        let mut v = view(1000, 0.008);
        let f = facts(&no_marks);
        v.step_threshold(1.0, &f);
        assert!((v.contamination - 0.009).abs() < 1e-12);
        v.step_threshold(1.0, &f);
        assert!((v.contamination - 0.010).abs() < 1e-12);
        v.step_threshold(1.0, &f);
        assert!((v.contamination - 0.020).abs() < 1e-12);
        assert_eq!(v.flagged_count(), 20);
        v.step_threshold(-1.0, &f);
        v.step_threshold(-1.0, &f);
        assert!(
            (v.contamination - 0.009).abs() < 1e-12,
            "{}",
            v.contamination
        );
        for _ in 0..20 {
            v.step_threshold(-1.0, &f);
        }
        assert_eq!((v.contamination, v.flagged_count()), (0.0, 0));
        v.filter = Filter::Flagged;
        v.refresh(&f);
        assert!(v.visible.is_empty() && v.selected.is_none());
    }

    #[test]
    fn find_next_wraps_from_below_the_selection_and_selects_the_match() {
        let mut v = view(10, 0.1);
        assert_eq!(v.selected, Some(0));
        let even = |r: u32| r.is_multiple_of(2);
        assert_eq!(v.find_next(even), Some(2));
        assert_eq!(v.find_next(even), Some(4));
        v.select(8);
        assert_eq!(v.find_next(even), Some(0), "wraps to the top");
        assert_eq!(v.find_next(|r| r == 7), Some(7));
        assert_eq!(v.find_next(|_| false), None);
        assert_eq!(v.selected, Some(7), "a miss leaves the selection alone");
    }

    #[test]
    fn next_unmarked_skips_marked_rows_below_the_selection() {
        let mut v = view(6, 0.1);
        let marked = |r: u32| matches!(r, 1 | 2 | 4);
        let f = facts(&marked);
        assert_eq!(v.next_unmarked(&f), Some(3));
        assert_eq!(v.next_unmarked(&f), Some(5));
        assert_eq!(v.next_unmarked(&f), None, "nothing below the last row");
        assert_eq!(v.selected, Some(5));
    }

    #[test]
    fn frozen_table_holds_new_scores_back_until_unfrozen() {
        let mut v = view(5, 0.2);
        let f = facts(&no_marks);
        assert!(!v.toggle_freeze(Instant::now(), &f));
        let reversed: Vec<f64> = (0..5).map(|r| r as f64).collect();
        let arrival = v.receive(
            scoring(DetectorKind::Dagmm, reversed.clone()),
            Instant::now(),
            &f,
        );
        assert_eq!(arrival, Arrival::HeldBack);
        assert_eq!(v.visible, vec![0, 1, 2, 3, 4], "still the old ranking");
        assert!(v.toggle_freeze(Instant::now(), &f));
        assert_eq!(v.visible, vec![4, 3, 2, 1, 0]);
        assert_eq!(v.shown().unwrap().scoring.scores, reversed);
        assert!(!v.toggle_freeze(Instant::now(), &f) && v.frozen);
        assert!(!v.toggle_freeze(Instant::now(), &f), "nothing was pending");
    }

    #[test]
    fn the_selection_follows_its_row_once_moved_and_the_top_row_until_then() {
        let mut v = view(5, 0.2);
        let f = facts(&no_marks);
        let reversed = || scoring(DetectorKind::Dagmm, (0..5).map(|r| r as f64).collect());
        v.receive(reversed(), Instant::now(), &f);
        assert_eq!(v.selected, Some(4), "never moved: the new top row");
        v.move_selection(2);
        assert_eq!(v.selected, Some(2));
        v.receive(
            scoring(DetectorKind::Dagmm, descending(5)),
            Instant::now(),
            &f,
        );
        assert_eq!(v.selected, Some(2), "moved: stays on row 2");
        assert_eq!(v.visible_index(2), Some(2));
        v.move_selection(-100);
        assert_eq!(v.selected, Some(0));
        v.move_selection(100);
        assert_eq!(v.selected, Some(4));
    }

    #[test]
    fn under_a_filter_a_row_that_leaves_the_list_hands_the_selection_to_its_successor() {
        let mut v = view(5, 0.2);
        let mut marks = [false; 5];
        v.filter = Filter::Unmarked;
        v.refresh(&facts(&|r| marks[r as usize]));
        v.select(2);
        marks[2] = true;
        v.after_mark(2, true, &facts(&|r| marks[r as usize]));
        assert_eq!(v.visible, vec![0, 1, 3, 4]);
        assert_eq!(v.selected, Some(3), "the row that took its place");
        // The last listed row leaving selects the new last one.
        v.select(4);
        marks[4] = true;
        v.after_mark(4, true, &facts(&|r| marks[r as usize]));
        assert_eq!(v.selected, Some(3));
        // Under "all", marking advances instead.
        v.filter = Filter::All;
        v.refresh(&facts(&|r| marks[r as usize]));
        v.select(0);
        v.after_mark(0, true, &facts(&|r| marks[r as usize]));
        assert_eq!(v.selected, Some(1));
        // A hidden row is revealed by switching to every row.
        v.filter = Filter::Marked;
        v.refresh(&facts(&|r| marks[r as usize]));
        v.reveal(0, &facts(&|r| marks[r as usize]));
        assert_eq!((v.filter, v.selected), (Filter::All, Some(0)));
    }

    #[test]
    fn two_detectors_rank_by_either_and_report_their_agreement() {
        let mut v = view(10, 0.3);
        let f = facts(&no_marks);
        // EGBAD agrees on rows 0 and 1 at the top, then reverses the rest.
        let egbad = vec![200.0, 199.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        v.receive(scoring(DetectorKind::Egbad, egbad), Instant::now(), &f);
        assert_eq!(v.shown().unwrap().detector(), DetectorKind::Dagmm);
        assert_eq!(v.other().unwrap().detector(), DetectorKind::Egbad);
        let a = v.agreement.unwrap();
        // Flagged: DAGMM {0, 1, 2}, EGBAD {0, 1, 9}.
        assert_eq!((a.both_flagged, a.flagged), (2, 3));
        assert!(a.spearman < 0.0 && a.spearman > -1.0, "{}", a.spearman);
        v.move_selection(3);
        assert_eq!(v.cycle_rank_by(&f), Some(DetectorKind::Egbad));
        assert_eq!(v.visible[..3], [0, 1, 9]);
        assert_eq!(v.selected, Some(3), "the selection stays on its row");
        assert!(v.is_flagged(9) && !v.is_flagged(2));
        assert_eq!(v.cycle_rank_by(&f), Some(DetectorKind::Dagmm));
        v.contamination = 0.5;
        v.refresh(&f);
        // DAGMM {0, 1, 2, 3, 4}, EGBAD {0, 1, 9, 8, 7}.
        let a = v.agreement.unwrap();
        assert_eq!((a.both_flagged, a.flagged), (2, 5));
    }
}

//! The workbench on a file larger than its sample: after training, every row of the file
//! is scored as it streams past (memory: one chunk, and four bytes a row per detector),
//! and the table becomes the training sample plus the file's top rows by each detector,
//! ranked among every row of the file.

use std::path::Path;

use anyhow::Result;

use super::scoring::{score_file, FileRanks, Streamed};
use crate::data::{Encoder, RawTable, ReadOptions};
use crate::model::Ensemble;

/// The file's top rows each detector keeps in the table: far more than an analyst reads,
/// a few megabytes of cells.
pub const TOP_ROWS: usize = 20_000;

/// What one pass over the whole file found.
pub struct WholeFileRanking {
    /// The sample's rows and the top rows, in file order.
    pub table: RawTable,
    /// Rows of the file's top that were not in the sample.
    pub top_rows: usize,
    /// Per detector: the scores of the rows outside `table`.
    pub ranks: Vec<FileRanks>,
    pub streamed: Streamed,
}

/// The pass was stopped by the caller.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ranking the whole file was stopped")
    }
}

impl std::error::Error for Interrupted {}

/// Scores every row of `path` by each of `ensembles`, keeping the `keep_top` highest rows
/// of each that `sample` lacks. `between_chunks` hears the rows scored so far after each
/// chunk and returns `false` to stop the pass (`Ok(None)`).
pub fn rank_whole_file(
    path: &Path,
    read: &ReadOptions,
    encoder: &Encoder,
    ensembles: &[&Ensemble],
    sample: &RawTable,
    keep_top: usize,
    mut between_chunks: impl FnMut(u64) -> bool,
) -> Result<Option<WholeFileRanking>> {
    let detectors = ensembles.len();
    let in_sample: Vec<u64> = sample.rows.iter().map(|r| r.number).collect();
    let expected = sample.sampled_from.unwrap_or(0) as usize;
    let mut rest: Vec<Vec<f32>> = (0..detectors)
        .map(|_| Vec::with_capacity(expected.saturating_sub(sample.len())))
        .collect();
    let mut top = Top {
        table: None,
        scores: vec![Vec::new(); detectors],
        floor: vec![f64::NEG_INFINITY; detectors],
        keep: keep_top.max(1),
    };
    let (mut rows, mut next_in_sample) = (0u64, 0usize);
    let streamed = score_file(
        path,
        read,
        &sample.schema,
        encoder,
        ensembles,
        |chunk, scores| {
            let mut picked = Vec::new();
            for (i, row) in chunk.rows.iter().enumerate() {
                while in_sample
                    .get(next_in_sample)
                    .is_some_and(|&n| n < row.number)
                {
                    next_in_sample += 1;
                }
                if in_sample.get(next_in_sample) == Some(&row.number) {
                    continue; // in the table already
                }
                for (kept, of) in rest.iter_mut().zip(scores) {
                    kept.push(of[i] as f32);
                }
                if top
                    .floor
                    .iter()
                    .zip(scores)
                    .any(|(floor, of)| of[i] > *floor)
                {
                    picked.push(i);
                }
            }
            rows += chunk.len() as u64;
            top.add(&chunk, &picked, scores);
            if between_chunks(rows) {
                Ok(())
            } else {
                Err(Interrupted.into())
            }
        },
    );
    let streamed = match streamed {
        Ok(streamed) => streamed,
        Err(e) if e.is::<Interrupted>() => return Ok(None),
        Err(e) => return Err(e),
    };
    top.prune();
    let kept = top.table.take();
    let top_rows = kept.as_ref().map_or(0, RawTable::len);
    let table = match &kept {
        Some(kept) => sample.merged_with(kept, &(0..kept.len()).collect::<Vec<_>>()),
        None => sample.clone(),
    };
    let ranks = rest
        .into_iter()
        .zip(&top.scores)
        .map(|(rest, in_table)| FileRanks {
            rows,
            rest: without(rest, in_table),
        })
        .collect();
    Ok(Some(WholeFileRanking {
        table,
        top_rows,
        ranks,
        streamed,
    }))
}

/// The rows kept so far: every row that was among some detector's `keep` highest when it
/// streamed past, pruned back to each detector's `keep` highest when twice that many.
struct Top {
    table: Option<RawTable>,
    /// Per detector, the score of each kept row.
    scores: Vec<Vec<f64>>,
    /// Per detector, the lowest score of its `keep` highest once that many are kept.
    floor: Vec<f64>,
    keep: usize,
}

impl Top {
    fn add(&mut self, chunk: &RawTable, picked: &[usize], scores: &[Vec<f64>]) {
        if picked.is_empty() {
            return;
        }
        match &mut self.table {
            Some(table) => table.append(chunk, picked),
            None => self.table = Some(chunk.select(picked)),
        }
        for (kept, of) in self.scores.iter_mut().zip(scores) {
            kept.extend(picked.iter().map(|&i| of[i]));
        }
        if self.table.as_ref().map_or(0, RawTable::len) > 2 * self.keep {
            self.prune();
        }
    }

    /// Keeps the rows among any detector's `keep` highest, and raises the floors.
    fn prune(&mut self) {
        let Some(table) = &self.table else {
            return;
        };
        let n = table.len();
        let mut wanted = vec![false; n];
        for (scores, floor) in self.scores.iter().zip(&mut self.floor) {
            let mut by_score: Vec<usize> = (0..n).collect();
            if n > self.keep {
                by_score.select_nth_unstable_by(self.keep - 1, |&a, &b| {
                    scores[b].total_cmp(&scores[a]).then(a.cmp(&b))
                });
                by_score.truncate(self.keep);
                *floor = by_score
                    .iter()
                    .map(|&i| scores[i])
                    .fold(f64::INFINITY, f64::min);
            }
            for i in by_score {
                wanted[i] = true;
            }
        }
        let rows: Vec<usize> = (0..n).filter(|&i| wanted[i]).collect();
        if rows.len() == n {
            return;
        }
        self.table = Some(table.select(&rows));
        for scores in &mut self.scores {
            *scores = rows.iter().map(|&i| scores[i]).collect();
        }
    }
}

/// `all` sorted highest first without one occurrence of each of `taken` (a multiset
/// difference: equal scores are interchangeable for ranking).
fn without(mut all: Vec<f32>, taken: &[f64]) -> Vec<f32> {
    all.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut taken: Vec<f32> = taken.iter().map(|&s| s as f32).collect();
    taken.sort_unstable_by(|a, b| b.total_cmp(a));
    let mut next = taken.into_iter().peekable();
    all.retain(|&s| {
        while next.next_if(|&t| t.total_cmp(&s).is_gt()).is_some() {}
        next.next_if(|&t| t.total_cmp(&s).is_eq()).is_none()
    });
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multiset_difference_removes_one_copy_per_taken_score() {
        let all = vec![1.0, 5.0, 3.0, 3.0, 2.0, 9.0];
        assert_eq!(without(all, &[3.0, 9.0, 7.0]), vec![5.0, 3.0, 2.0, 1.0]);
    }
}

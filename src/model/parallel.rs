//! Data-parallel training steps: a batch split into parts, each part's forward and backward
//! pass on its own thread. dfdx parallelises only its matrix products, which at our sizes
//! (DAGMM: a 1,024-row batch through 120-60-30-10 layers; EGBAD: 256 rows through
//! 128-wide layers) leaves a second core nearly idle; splitting the batch keeps both busy
//! for the whole step.

use std::ops::Range;

use anyhow::{anyhow, Result};
use dfdx::prelude::*;
use dfdx::tensor::Gradients;

use super::dense::{Dev, ParamMut, Params};

/// Rows per part below which a step is not split over threads (the threads' hand-offs
/// would cost more than they save).
pub const MIN_PART_ROWS: usize = 128;

/// The threads a step splits its batch over: per part, a single-threaded rayon pool (so
/// dfdx's matrix products inside a part stay on that part's thread) and a device of its
/// own (so each part's dropout draws come from its own seeded stream, and a run is
/// reproducible whatever the threads' timing).
pub struct StepThreads {
    pools: Vec<rayon::ThreadPool>,
    devs: Vec<Dev>,
}

impl StepThreads {
    /// `parts` threads (at least one), their devices seeded from `seed`.
    pub fn new(parts: usize, seed: u64) -> Result<Self> {
        let parts = parts.max(1);
        let pools = (0..parts)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("dagmm-step-{i}"))
                    .build()
                    .map_err(|e| anyhow!("starting a step thread: {e}"))
            })
            .collect::<Result<_>>()?;
        let devs = (0..parts)
            .map(|i| Dev::seed_from_u64(seed ^ (0x9e37_79b9_u64.wrapping_mul(i as u64 + 1))))
            .collect();
        Ok(Self { pools, devs })
    }

    /// Parts a batch is split into.
    pub fn parts(&self) -> usize {
        self.pools.len()
    }

    /// Whether a batch of `rows` rows is split: every part gets at least [`MIN_PART_ROWS`].
    pub fn splits(&self, rows: usize) -> bool {
        self.parts() > 1 && rows >= self.parts() * MIN_PART_ROWS
    }

    /// `work(rows, device)` for each part of a batch of `rows` rows, in part order: over
    /// the threads when the batch [`splits`](Self::splits), else one part on the calling
    /// thread with `dev`. For steps whose parts need nothing from each other until their
    /// gradients are summed.
    pub fn map_parts<R: Send>(
        &self,
        dev: &Dev,
        rows: usize,
        work: impl Fn(Range<usize>, &Dev) -> R + Sync,
    ) -> Vec<R> {
        if !self.splits(rows) {
            return vec![work(0..rows, dev)];
        }
        let ranges = split_rows(rows, self.parts());
        self.run(|i, dev| work(ranges[i].clone(), dev), || ()).1
    }

    /// Runs `work(part, device)` for every part at once, each on its own thread, while
    /// `meanwhile` runs on the calling thread (it may talk to the parts); returns what
    /// `meanwhile` returned and the parts' results in part order.
    pub fn run<R: Send, C>(
        &self,
        work: impl Fn(usize, &Dev) -> R + Sync,
        meanwhile: impl FnOnce() -> C,
    ) -> (C, Vec<R>) {
        let work = &work;
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .pools
                .iter()
                .zip(&self.devs)
                .enumerate()
                .map(|(i, (pool, dev))| scope.spawn(move || pool.install(|| work(i, dev))))
                .collect();
            let between = meanwhile();
            let results = handles
                .into_iter()
                .map(|h| h.join().expect("a step thread panicked"))
                .collect();
            (between, results)
        })
    }
}

/// `rows` split into `parts` contiguous ranges of near-equal size.
pub fn split_rows(rows: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, rows.max(1));
    (0..parts)
        .map(|i| rows * i / parts..rows * (i + 1) / parts)
        .collect()
}

/// The parts' results folded by `add` and their gradients summed over `model`'s
/// parameters.
pub fn sum_parts<L>(
    model: &mut impl Params,
    parts: Vec<(L, Gradients<f32, Dev>)>,
    add: impl Fn(L, L) -> L,
) -> Result<(L, Gradients<f32, Dev>)> {
    let mut parts = parts.into_iter();
    let (mut value, mut grads) = parts
        .next()
        .ok_or_else(|| anyhow!("a step with no parts"))?;
    let mut others = Vec::new();
    for (v, g) in parts {
        value = add(value, v);
        others.push(g);
    }
    sum_gradients(model, &mut grads, others)?;
    Ok((value, grads))
}

/// Adds every parameter's gradient in `others` to `into`.
pub fn sum_gradients(
    model: &mut impl Params,
    into: &mut Gradients<f32, Dev>,
    others: Vec<Gradients<f32, Dev>>,
) -> Result<()> {
    let mut failure = None;
    for other in others {
        model.visit_params("", &mut |name, param| {
            let result = match param {
                ParamMut::Matrix(t) => add_one(&*t, into, &other),
                ParamMut::Vector(t) => add_one(&*t, into, &other),
            };
            if let Err(e) = result {
                failure.get_or_insert(anyhow!("summing the gradient of {name}: {e:?}"));
            }
        });
    }
    failure.map_or(Ok(()), Err)
}

fn add_one<S: Shape>(
    param: &Tensor<S, f32, Dev>,
    into: &mut Gradients<f32, Dev>,
    other: &Gradients<f32, Dev>,
) -> Result<(), <Dev as HasErr>::Err> {
    let mut values = vec![0f32; param.shape().num_elements()];
    other.get(param).copy_into(&mut values);
    let sum = into.get_or_alloc_mut(param)?;
    sum.iter_mut().zip(&values).for_each(|(s, v)| *s += v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_into_contiguous_near_equal_parts() {
        assert_eq!(split_rows(10, 2), [0..5, 5..10]);
        assert_eq!(split_rows(7, 3), [0..2, 2..4, 4..7]);
        assert_eq!(split_rows(1, 4).len(), 1);
        assert_eq!(split_rows(1, 4)[0], 0..1);
    }

    #[test]
    fn every_part_runs_on_its_own_single_threaded_pool() {
        let threads = StepThreads::new(2, 0).unwrap();
        let (meanwhile, seen) = threads.run(|i, _| (i, rayon::current_num_threads()), || 7);
        assert_eq!((meanwhile, seen), (7, vec![(0, 1), (1, 1)]));
    }
}

//! Data-parallel training steps: a batch split into parts, each part's forward and backward
//! pass on its own thread. dfdx parallelises only its matrix products, which at our sizes
//! (DAGMM: a 1,024-row batch through 120-60-30-10 layers; EGBAD: 256 rows through
//! 128-wide layers) leaves a second core nearly idle; splitting the batch keeps both busy
//! for the whole step.

use std::cell::Cell;
use std::collections::VecDeque;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use dfdx::prelude::*;
use dfdx::tensor::Gradients;

use super::dense::{Dev, ParamMut, Params};

/// Rows per part below which a step is not split over threads (the threads' hand-offs
/// would cost more than they save).
pub const MIN_PART_ROWS: usize = 128;

/// How long a thread that waits for a part (or for its result) checks before it sleeps:
/// about the serial work between two parts of a step, so back-to-back parts hand over
/// without a sleep and a wake-up (each costs tens of microseconds), while a thread left
/// idle stops using its core within a millisecond.
const SPIN: Duration = Duration::from_micros(500);

/// The threads a step splits its batch over. Each part thread lives as long as this value
/// (no thread is started per step) and is the one thread of a rayon pool of its own, so
/// dfdx's and gemm's matrix products inside a part stay on it; each part has a device of
/// its own, so its dropout draws come from its own seeded stream and a run is reproducible
/// whatever the threads' timing.
pub struct StepThreads {
    threads: Vec<PartThread>,
    devs: Vec<Dev>,
}

/// A piece of work with its borrows erased (see [`post_borrowed`] for why that is sound).
type Job = Box<dyn FnOnce() + Send + 'static>;

/// One part thread: it runs the jobs posted to it, one at a time, until it is closed. It
/// waits in its own mailbox, never in a rayon scope, so it cannot pick up other work while
/// it waits (rayon's waits across pools steal work, which can deadlock).
struct PartThread {
    mailbox: Arc<Mailbox>,
    _pool: rayon::ThreadPool,
}

/// A part thread's queue of jobs; `posted` lets the thread see a job without locking while
/// it spins.
#[derive(Default)]
struct Mailbox {
    slot: Mutex<Letter>,
    posted: AtomicBool,
    wake: Condvar,
}

#[derive(Default)]
struct Letter {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Mailbox {
    fn post(&self, job: Job) {
        let mut letter = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        letter.jobs.push_back(job);
        self.posted.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn close(&self) {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.posted.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// The next job, or `None` once closed.
    fn take(&self) -> Option<Job> {
        spin_until(|| self.posted.load(Ordering::Acquire));
        let mut letter = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = letter.jobs.pop_front() {
                self.posted
                    .store(!letter.jobs.is_empty(), Ordering::Relaxed);
                return Some(job);
            }
            if letter.closed {
                return None;
            }
            letter = self
                .wake
                .wait(letter)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl PartThread {
    fn start(i: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(move |_| format!("dagmm-step-{i}"))
            .build()
            .map_err(|e| anyhow!("starting a step thread: {e}"))?;
        let mailbox = Arc::new(Mailbox::default());
        let inbox = Arc::clone(&mailbox);
        pool.spawn(move || {
            while let Some(job) = inbox.take() {
                job();
            }
        });
        Ok(Self {
            mailbox,
            _pool: pool,
        })
    }
}

impl Drop for PartThread {
    fn drop(&mut self) {
        self.mailbox.close();
    }
}

/// Where the jobs of one hand-over leave their results, and how their waiter learns that
/// all have (shared, so a job's last touch of it never outlives the waiter's copy).
struct Results<R> {
    slots: Vec<Mutex<Option<std::thread::Result<R>>>>,
    remaining: AtomicUsize,
    lock: Mutex<()>,
    done: Condvar,
}

impl<R> Results<R> {
    fn new(jobs: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: (0..jobs).map(|_| Mutex::new(None)).collect(),
            remaining: AtomicUsize::new(jobs),
            lock: Mutex::new(()),
            done: Condvar::new(),
        })
    }

    fn put(&self, i: usize, result: std::thread::Result<R>) {
        *self.slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.remaining.fetch_sub(1, Ordering::AcqRel);
        self.done.notify_all();
    }

    /// Waits for every job (checking for a while first when `spin`), then returns their
    /// results in order, raising a job's panic here.
    fn wait(&self, spin: bool) -> Vec<R> {
        wait_until(&self.lock, &self.done, spin, || {
            self.remaining.load(Ordering::Acquire) == 0
        });
        self.slots
            .iter()
            .map(|slot| {
                match slot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .expect("every job left its result")
                {
                    Ok(result) => result,
                    Err(payload) => panic::resume_unwind(payload),
                }
            })
            .collect()
    }
}

/// Returns once `ready` holds: checking it first for up to [`SPIN`] when `spin`, then
/// sleeping on `wake` (whoever makes `ready` hold notifies it while holding `lock`).
fn wait_until(lock: &Mutex<()>, wake: &Condvar, spin: bool, ready: impl Fn() -> bool) {
    if spin {
        spin_until(&ready);
    }
    let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
    while !ready() {
        guard = wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
    }
}

/// Checks `ready` (yielding the core between checks) until it holds or [`SPIN`] has passed.
fn spin_until(ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() && started.elapsed() < SPIN {
        std::thread::yield_now();
    }
}

/// Where the parts of a step meet halfway ([`StepThreads::map_parts_meeting`]).
struct Meeting<'j, A, S> {
    handed: Mutex<Vec<Option<A>>>,
    /// The joined value, or `None` when a part failed before it could be joined; set once.
    joined: OnceLock<Option<S>>,
    settled: AtomicBool,
    lock: Mutex<()>,
    ready: Condvar,
    join: &'j (dyn Fn(Vec<A>) -> S + Sync),
}

impl<'j, A, S> Meeting<'j, A, S> {
    fn new(parts: usize, join: &'j (dyn Fn(Vec<A>) -> S + Sync)) -> Self {
        Self {
            handed: Mutex::new((0..parts).map(|_| None).collect()),
            joined: OnceLock::new(),
            settled: AtomicBool::new(false),
            lock: Mutex::new(()),
            ready: Condvar::new(),
            join,
        }
    }

    /// Sets the outcome, unless one is set already, and wakes every part waiting for it.
    fn settle(&self, outcome: Option<S>) {
        if self.joined.set(outcome).is_ok() {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.settled.store(true, Ordering::Release);
            self.ready.notify_all();
        }
    }
}

/// A part's place at a [`Meeting`].
pub struct Seat<'m, A, S> {
    meeting: &'m Meeting<'m, A, S>,
    part: usize,
}

impl<'m, A, S> Seat<'m, A, S> {
    /// Hands in this part's `handed` and waits for the other parts; the joined value, or
    /// `None` when another part failed (the step raises its panic).
    pub fn meet(&self, handed: A) -> Option<&'m S> {
        let meeting = self.meeting;
        let all = {
            let mut slots = meeting
                .handed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            slots[self.part] = Some(handed);
            slots.iter().all(Option::is_some).then(|| {
                slots
                    .iter_mut()
                    .filter_map(Option::take)
                    .collect::<Vec<A>>()
            })
        };
        if let Some(all) = all {
            match panic::catch_unwind(AssertUnwindSafe(|| (meeting.join)(all))) {
                Ok(joined) => meeting.settle(Some(joined)),
                Err(payload) => {
                    meeting.settle(None);
                    panic::resume_unwind(payload);
                }
            }
        }
        wait_until(&meeting.lock, &meeting.ready, true, || {
            meeting.settled.load(Ordering::Acquire)
        });
        meeting.joined.get().and_then(Option::as_ref)
    }
}

thread_local! {
    /// The [`StepThreads`] whose lead this thread is running a step for (its address), so
    /// that the step's parts know to run the first part here.
    static LEADING: Cell<usize> = const { Cell::new(0) };
}

impl StepThreads {
    /// `parts` threads (at least one), their devices seeded from `seed`.
    pub fn new(parts: usize, seed: u64) -> Result<Self> {
        let parts = parts.max(1);
        let threads = (0..parts).map(PartThread::start).collect::<Result<_>>()?;
        let devs = (0..parts)
            .map(|i| Dev::seed_from_u64(seed ^ (0x9e37_79b9_u64.wrapping_mul(i as u64 + 1))))
            .collect();
        Ok(Self { threads, devs })
    }

    /// Parts a batch is split into.
    pub fn parts(&self) -> usize {
        self.threads.len()
    }

    /// Whether a batch of `rows` rows is split: every part gets at least [`MIN_PART_ROWS`].
    pub fn splits(&self, rows: usize) -> bool {
        self.parts() > 1 && rows >= self.parts() * MIN_PART_ROWS
    }

    /// Runs `step` on the first part thread, the lead, and returns its result. Inside it,
    /// [`map_parts_meeting`](Self::map_parts_meeting) runs the first part on the lead itself
    /// and hands the others over without either side sleeping in between, so a step pays
    /// for one sleep and wake-up (handing the step over and back), not one per part. A step that
    /// does not split (one thread, a small batch) runs on the calling thread.
    pub fn lead<R: Send>(&self, rows: usize, step: impl FnOnce() -> R + Send) -> R {
        if !self.splits(rows) || self.is_leading() {
            return step();
        }
        let address = self.address();
        let results = Results::new(1);
        let led = Arc::clone(&results);
        post_borrowed(&self.threads[0], move || {
            LEADING.with(|leading| leading.set(address));
            let result = panic::catch_unwind(AssertUnwindSafe(step));
            LEADING.with(|leading| leading.set(0));
            led.put(0, result);
        });
        results.wait(false).pop().expect("the lead's result")
    }

    /// `work(rows, device, seat)` for each part of a batch of `rows` rows, in part order:
    /// over the threads when the batch [`splits`](Self::splits), else one part on the
    /// calling thread with `dev`. The parts meet halfway: each hands what its first half
    /// produced to its [`Seat`], the last to arrive joins them all (in part order) with
    /// `join`, and every part's second half reads the joined value. Returns that value
    /// (`None` when a part ended without meeting) with the parts' results.
    pub fn map_parts_meeting<A: Send, S: Send + Sync, R: Send>(
        &self,
        dev: &Dev,
        rows: usize,
        join: impl Fn(Vec<A>) -> S + Sync,
        work: impl Fn(Range<usize>, &Dev, &Seat<'_, A, S>) -> R + Sync,
    ) -> (Option<S>, Vec<R>) {
        let ranges = if self.splits(rows) {
            split_rows(rows, self.parts())
        } else {
            std::iter::once(0..rows).collect()
        };
        let meeting = Meeting::new(ranges.len(), &join);
        let part = |i: usize, dev: &Dev| {
            let seat = Seat {
                meeting: &meeting,
                part: i,
            };
            let result =
                panic::catch_unwind(AssertUnwindSafe(|| work(ranges[i].clone(), dev, &seat)));
            // A part that ends without meeting (it failed) releases the others waiting for it.
            meeting.settle(None);
            result.unwrap_or_else(|payload| panic::resume_unwind(payload))
        };
        let results = if ranges.len() == 1 {
            vec![part(0, dev)]
        } else {
            self.each_part(part)
        };
        (meeting.joined.into_inner().flatten(), results)
    }

    /// `part(i, device)` for every part: on the lead, the first here and the others handed
    /// over; elsewhere, all on their threads ([`run`](Self::run)).
    fn each_part<R: Send>(&self, part: impl Fn(usize, &Dev) -> R + Sync) -> Vec<R> {
        if !self.is_leading() {
            return self.run(part, || ()).1;
        }
        let others = self.post_parts(1, &part);
        let first = panic::catch_unwind(AssertUnwindSafe(|| part(0, &self.devs[0])));
        let others = others.wait(true);
        let first = first.unwrap_or_else(|payload| panic::resume_unwind(payload));
        std::iter::once(first).chain(others).collect()
    }

    /// Runs `work(part, device)` for every part at once, each on its own thread, while
    /// `meanwhile` runs on the calling thread (it may talk to the parts); returns what
    /// `meanwhile` returned and the parts' results in part order. A panic in a part or in
    /// `meanwhile` is raised here, after every part has finished.
    pub fn run<R: Send, C>(
        &self,
        work: impl Fn(usize, &Dev) -> R + Sync,
        meanwhile: impl FnOnce() -> C,
    ) -> (C, Vec<R>) {
        assert!(
            !self.is_leading(),
            "StepThreads::run called from its own lead"
        );
        let parts = self.post_parts(0, &work);
        let between = panic::catch_unwind(AssertUnwindSafe(meanwhile));
        let parts = parts.wait(false);
        let between = between.unwrap_or_else(|payload| panic::resume_unwind(payload));
        (between, parts)
    }

    /// Posts `work(part, device)` for the parts `from..` to their threads. The caller must
    /// [`wait`](Results::wait) on the returned results before `work`'s borrows end.
    fn post_parts<R: Send>(
        &self,
        from: usize,
        work: &(impl Fn(usize, &Dev) -> R + Sync),
    ) -> Arc<Results<R>> {
        let results = Results::new(self.parts() - from);
        for (i, (thread, dev)) in self.threads.iter().zip(&self.devs).enumerate().skip(from) {
            let results = Arc::clone(&results);
            post_borrowed(thread, move || {
                results.put(
                    i - from,
                    panic::catch_unwind(AssertUnwindSafe(|| work(i, dev))),
                );
            });
        }
        results
    }

    /// Whether this thread is running a step this value leads.
    fn is_leading(&self) -> bool {
        LEADING.with(Cell::get) == self.address()
    }

    fn address(&self) -> usize {
        self as *const Self as usize
    }
}

/// Posts `job`, which borrows from its caller, to `thread`.
///
/// Sound only because every caller waits ([`Results::wait`]) until the job has put its
/// result before it returns or unwinds: putting the result is the job's last use of a
/// borrow (the `Results` it touches afterwards it co-owns), and a job never panics past
/// it (the work runs under `catch_unwind`). Nor is a job dropped unrun while its caller
/// waits: a mailbox closes only when its `StepThreads` drops, which the caller borrows.
fn post_borrowed<'a>(thread: &PartThread, job: impl FnOnce() + Send + 'a) {
    let job: Box<dyn FnOnce() + Send + 'a> = Box::new(job);
    // SAFETY: see above; only the lifetime changes, not the layout.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Job>(job) };
    thread.mailbox.post(job);
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
    for mut other in others {
        model.visit_params("", &mut |name, param| {
            let result = match param {
                ParamMut::Matrix(t) => add_one(&*t, into, &mut other),
                ParamMut::Vector(t) => add_one(&*t, into, &mut other),
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
    other: &mut Gradients<f32, Dev>,
) -> Result<(), <Dev as HasErr>::Err> {
    // Read in place (`get` would copy the buffer into a tensor first).
    let values = other.get_or_alloc_mut(param)?;
    let sum = into.get_or_alloc_mut(param)?;
    sum.iter_mut().zip(values.iter()).for_each(|(s, v)| *s += v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts that never meet: each runs `work` alone.
    fn map_parts<R: Send>(
        threads: &StepThreads,
        dev: &Dev,
        rows: usize,
        work: impl Fn(Range<usize>, &Dev) -> R + Sync,
    ) -> Vec<R> {
        let join = |_: Vec<()>| ();
        threads
            .map_parts_meeting(dev, rows, join, |rows, dev, _| work(rows, dev))
            .1
    }

    #[test]
    fn rows_split_into_contiguous_near_equal_parts() {
        assert_eq!(split_rows(10, 2), [0..5, 5..10]);
        assert_eq!(split_rows(7, 3), [0..2, 2..4, 4..7]);
        assert_eq!(split_rows(1, 4).len(), 1);
        assert_eq!(split_rows(1, 4)[0], 0..1);
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    #[test]
    fn every_part_runs_on_its_own_single_threaded_pool() {
        let threads = StepThreads::new(2, 0).unwrap();
        let (meanwhile, seen) = threads.run(|i, _| (i, rayon::current_num_threads()), || 7);
        assert_eq!((meanwhile, seen), (7, vec![(0, 1), (1, 1)]));
    }

    #[test]
    fn a_led_step_runs_its_first_part_on_the_lead_and_the_others_on_their_threads() {
        let threads = StepThreads::new(2, 0).unwrap();
        let rows = 2 * MIN_PART_ROWS;
        let dev = Dev::seed_from_u64(1);
        let part =
            |rows: Range<usize>, _: &Dev| (rows, thread_name(), rayon::current_num_threads());
        for _ in 0..50 {
            let (lead, parts) = threads.lead(rows, || {
                (thread_name(), map_parts(&threads, &dev, rows, part))
            });
            assert_eq!(lead, "dagmm-step-0");
            assert_eq!(
                parts,
                vec![
                    (0..MIN_PART_ROWS, "dagmm-step-0".to_string(), 1),
                    (MIN_PART_ROWS..rows, "dagmm-step-1".to_string(), 1)
                ]
            );
        }
        // Outside a led step, and for a batch too small to split, the same answers.
        assert_eq!(map_parts(&threads, &dev, rows, part).len(), 2);
        let small = threads.lead(10, || map_parts(&threads, &dev, 10, part));
        assert_eq!(
            small,
            vec![(0..10, thread_name(), rayon::current_num_threads())]
        );
    }

    #[test]
    fn parts_meet_halfway_and_each_reads_what_all_handed_in() {
        let threads = StepThreads::new(2, 0).unwrap();
        let dev = Dev::seed_from_u64(1);
        let join = |handed: Vec<usize>| handed.iter().map(|h| h * 10).collect::<Vec<_>>();
        let work = |rows: Range<usize>, _: &Dev, seat: &Seat<'_, usize, Vec<usize>>| {
            let joined = seat.meet(rows.len()).expect("no part failed");
            (rows.start, joined.clone())
        };
        let rows = 2 * MIN_PART_ROWS + 3;
        for led in [false, true] {
            let (joined, parts) = if led {
                threads.lead(rows, || threads.map_parts_meeting(&dev, rows, join, work))
            } else {
                threads.map_parts_meeting(&dev, rows, join, work)
            };
            let sizes = vec![1290, 1300];
            assert_eq!(joined, Some(sizes.clone()));
            assert_eq!(parts, vec![(0, sizes.clone()), (MIN_PART_ROWS + 1, sizes)]);
        }
        // A batch that does not split meets alone.
        let (joined, parts) = threads.map_parts_meeting(&dev, 10, join, work);
        assert_eq!((joined, parts), (Some(vec![100]), vec![(0, vec![100])]));
    }

    #[test]
    fn a_part_that_fails_before_the_meeting_releases_the_others() {
        let threads = StepThreads::new(2, 0).unwrap();
        let dev = Dev::seed_from_u64(1);
        let rows = 2 * MIN_PART_ROWS;
        let released = AtomicUsize::new(0);
        for failing in 0..2 {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                threads.lead(rows, || {
                    threads.map_parts_meeting(
                        &dev,
                        rows,
                        |handed: Vec<usize>| handed.len(),
                        |range, _, seat| {
                            if range.start == failing * MIN_PART_ROWS {
                                std::thread::sleep(Duration::from_millis(20));
                                panic!("part {failing} fails");
                            }
                            assert_eq!(seat.meet(range.len()), None, "nothing was joined");
                            released.fetch_add(1, Ordering::SeqCst);
                        },
                    )
                })
            }));
            let message = outcome.unwrap_err();
            assert_eq!(
                message.downcast_ref::<String>().map(String::as_str),
                Some(format!("part {failing} fails").as_str())
            );
            assert_eq!(released.load(Ordering::SeqCst), failing + 1);
        }
    }

    #[test]
    fn a_part_that_panics_is_raised_after_the_others_finish_and_the_threads_stay_usable() {
        let threads = StepThreads::new(2, 0).unwrap();
        let rows = 2 * MIN_PART_ROWS;
        let dev = Dev::seed_from_u64(1);
        let finished = AtomicUsize::new(0);
        for failing in 0..2 {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                threads.lead(rows, || {
                    map_parts(&threads, &dev, rows, |range, _| {
                        if range.start == failing * MIN_PART_ROWS {
                            panic!("part {failing} fails");
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                })
            }));
            let message = outcome.unwrap_err();
            assert_eq!(
                message.downcast_ref::<String>().map(String::as_str),
                Some(format!("part {failing} fails").as_str())
            );
            assert_eq!(
                finished.load(Ordering::SeqCst),
                failing + 1,
                "the other part finished first"
            );
        }
        let (_, seen) = threads.run(|i, _| i, || ());
        assert_eq!(seen, vec![0, 1]);
        assert_eq!(
            threads.lead(rows, || map_parts(&threads, &dev, rows, |r, _| r.len())),
            vec![MIN_PART_ROWS; 2]
        );
    }
}

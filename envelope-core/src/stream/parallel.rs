//! Sealing or opening a batch of segments on several threads (the caller's and scoped
//! helpers): segments are independent, so a batch splits into contiguous runs.

use crate::error::{Error, Result};

/// The segments a reader or writer handles per batch and thread: with 64 KiB segments, 2
/// MiB per thread (a thread spawn per 2 MiB costs well under 1% of sealing them).
pub(crate) const SEGMENTS_PER_THREAD: usize = 32;

/// Runs `f` on every item, split into up to `threads` contiguous runs, one per thread (the
/// first on the caller's thread). Returns the error of the lowest failing item.
pub(crate) fn for_each<T: Send>(
    threads: usize,
    items: &mut [T],
    f: impl Fn(&mut T) -> Result<()> + Sync,
) -> Result<()> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter_mut().try_for_each(f);
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut runs = items.chunks_mut(per);
        let first = runs.next();
        let helpers: Vec<_> = runs
            .map(|run| scope.spawn(move || run.iter_mut().try_for_each(f)))
            .collect();
        let mut result = first.map_or(Ok(()), |run| run.iter_mut().try_for_each(f));
        for helper in helpers {
            let joined = helper
                .join()
                .unwrap_or_else(|_| Err(Error::InvalidConfig("a segment thread panicked".into())));
            if result.is_ok() {
                result = joined;
            }
        }
        result
    })
}

/// The segments one job of a [`pipeline`] covers (256 KiB at 64 KiB): large enough that
/// handing it to another thread (a channel message, no wake-up while the queue holds
/// work) costs well under 1% of sealing or opening it, small enough to stay in cache
/// between the copy and the cipher and to leave little for one thread to finish alone at
/// the end of a call. A batch is 8 jobs per thread.
pub(crate) const JOB_SEGMENTS: usize = SEGMENTS_PER_THREAD / 8;

/// Runs a stream's jobs on `threads` threads (the caller's and `threads - 1` scoped
/// helpers), with `slots` as the only buffers (bounded memory):
///
/// - `fill` runs on the caller's thread, in order, before a job is queued (reading its
///   wire bytes from a source into the job's slot, which only one thread can do);
/// - `process` runs on whichever thread takes the job (sealing or opening; returns the
///   output length in the slot);
/// - `emit` runs on the caller's thread with each job's output, in the inputs' order
///   (writing sealed segments to a sink).
///
/// The caller's thread keeps the queue full and takes jobs itself between fills and
/// emits, so reading the source, the cipher and writing the sink overlap, the helpers are
/// spawned once per call, and no thread waits while there is work (waking a thread costs
/// tens of microseconds on a virtual machine). With one thread every job runs end to end
/// on the caller's thread, while it is in cache. Stops queuing jobs at the first failure;
/// returns the error of the earliest failing job (`fill`'s and `emit`'s included; a
/// panic in `process` is `panicked()`).
pub(crate) fn pipeline<'s, I: Send, E: Send>(
    threads: usize,
    mut slots: Vec<&'s mut [u8]>,
    inputs: impl IntoIterator<Item = I>,
    mut fill: impl FnMut(&I, &mut [u8]) -> std::result::Result<(), E>,
    process: impl Fn(I, &mut [u8]) -> std::result::Result<usize, E> + Sync,
    mut emit: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    panicked: impl Fn() -> E + Sync,
) -> std::result::Result<(), E> {
    use std::collections::BTreeMap;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::{Mutex, PoisonError, mpsc};

    if threads <= 1 || slots.len() < 2 {
        let Some(slot) = slots.first_mut() else {
            return Ok(());
        };
        for input in inputs {
            fill(&input, slot)?;
            let len = process(input, slot)?;
            emit(&slot[..len])?;
        }
        return Ok(());
    }
    type Job<'s, I> = (usize, I, &'s mut [u8]);
    type Done<'s, E> = (usize, std::result::Result<usize, E>, &'s mut [u8]);
    // A panic is a failed job, so that every job comes back and none is waited for forever.
    let run = |(at, input, slot): Job<'s, I>| -> Done<'s, E> {
        let out = catch_unwind(AssertUnwindSafe(|| process(input, &mut *slot)))
            .unwrap_or_else(|_| Err(panicked()));
        (at, out, slot)
    };
    let (jobs, queue) = mpsc::channel::<Job<'s, I>>();
    let queue = Mutex::new(queue);
    let (finished, done) = mpsc::channel::<Done<'s, E>>();
    let (run, queue) = (&run, &queue);
    std::thread::scope(|scope| {
        for _ in 1..threads {
            let finished = finished.clone();
            scope.spawn(move || {
                loop {
                    // The lock is held while waiting: one idle helper waits at a time (the
                    // caller's thread only ever tries the lock).
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = next else { break };
                    if finished.send(run(job)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(finished);
        let mut inputs = inputs.into_iter().enumerate();
        let mut ready: BTreeMap<usize, (usize, &'s mut [u8])> = BTreeMap::new();
        let mut failure: Option<(usize, E)> = None;
        let (mut in_flight, mut next_out) = (0usize, 0usize);
        let fail = |failure: &mut Option<(usize, E)>, at: usize, e: E| {
            if failure.as_ref().is_none_or(|(first, _)| at < *first) {
                *failure = Some((at, e));
            }
        };
        let mut accept = |(at, out, slot): Done<'s, E>,
                          failure: &mut Option<(usize, E)>,
                          slots: &mut Vec<&'s mut [u8]>| {
            match out {
                Ok(len) => {
                    ready.insert(at, (len, slot));
                }
                Err(e) => {
                    fail(failure, at, e);
                    slots.push(slot);
                }
            }
            // Outputs before the earliest failure are emitted; none after it.
            while let Some((len, slot)) = ready.remove(&next_out) {
                if failure.as_ref().is_none_or(|(at, _)| next_out < *at)
                    && let Err(e) = emit(&slot[..len])
                {
                    fail(failure, next_out, e);
                }
                next_out += 1;
                slots.push(slot);
            }
        };
        let mut exhausted = false;
        loop {
            while failure.is_none() && !exhausted {
                let Some(slot) = slots.pop() else { break };
                let Some((at, input)) = inputs.next() else {
                    slots.push(slot);
                    exhausted = true;
                    break;
                };
                if let Err(e) = fill(&input, slot) {
                    fail(&mut failure, at, e);
                    slots.push(slot);
                    break;
                }
                if jobs.send((at, input, slot)).is_err() {
                    fail(&mut failure, at, panicked());
                    break;
                }
                in_flight += 1;
            }
            while let Ok(finished) = done.try_recv() {
                in_flight -= 1;
                accept(finished, &mut failure, &mut slots);
            }
            if in_flight == 0 {
                if exhausted || failure.is_some() {
                    break;
                }
                // The jobs came back while the queue was being drained: queue more.
                continue;
            }
            // Take a queued job; when a helper holds the queue or it is empty, every job
            // left is with a helper: wait for one to come back.
            let mine = match queue.try_lock() {
                Ok(queue) => queue.try_recv().ok(),
                Err(_) => None,
            };
            let finished = match mine {
                Some(job) => run(job),
                None => match done.recv() {
                    Ok(finished) => finished,
                    Err(_) => {
                        fail(&mut failure, usize::MAX, panicked());
                        break;
                    }
                },
            };
            in_flight -= 1;
            accept(finished, &mut failure, &mut slots);
        }
        drop(jobs);
        match failure {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs 64 jobs through 4 slots: job k is filled with k, processed into k + 1 and
    /// emitted; `fail_fill`, `fail_job` and `fail_emit` name jobs that fail there.
    fn run(
        threads: usize,
        fail_fill: &[usize],
        fail_job: &[usize],
        fail_emit: &[usize],
    ) -> (std::result::Result<(), usize>, Vec<usize>) {
        let mut buffers = [[0u8; 1]; 4];
        let slots: Vec<&mut [u8]> = buffers.iter_mut().map(|b| &mut b[..]).collect();
        let mut emitted = Vec::new();
        let result = pipeline(
            threads,
            slots,
            0..64usize,
            |&k, slot| {
                if fail_fill.contains(&k) {
                    return Err(k);
                }
                slot[0] = k as u8;
                Ok(())
            },
            |k, slot| {
                assert_eq!(
                    slot[0] as usize, k,
                    "job {k} processed before it was filled"
                );
                if fail_job.contains(&k) {
                    return Err(k);
                }
                slot[0] += 1;
                Ok(1)
            },
            |out| {
                let k = out[0] as usize - 1;
                if fail_emit.contains(&k) {
                    return Err(k);
                }
                emitted.push(k);
                Ok(())
            },
            || usize::MAX,
        );
        (result, emitted)
    }

    #[test]
    fn every_job_is_filled_processed_and_emitted_once_in_order() {
        for threads in [1, 2, 4] {
            let (result, emitted) = run(threads, &[], &[], &[]);
            assert_eq!(result, Ok(()));
            assert_eq!(emitted, (0..64).collect::<Vec<_>>(), "{threads} threads");
        }
    }

    #[test]
    fn nothing_after_a_failure_is_emitted() {
        for threads in [1, 2, 4] {
            for (fill, job, emit) in [
                (&[9][..], &[][..], &[][..]),
                (&[], &[9], &[]),
                (&[], &[], &[9]),
            ] {
                let (result, emitted) = run(threads, fill, job, emit);
                assert_eq!(result, Err(9), "{threads} threads");
                assert_eq!(emitted, (0..9).collect::<Vec<_>>(), "{threads} threads");
            }
        }
    }

    #[test]
    fn the_earliest_failing_job_is_reported() {
        // Jobs are handed out in order, so every job before a failing one is in flight or
        // done when its failure arrives: the earliest failure is always among them.
        for threads in [1, 2, 4] {
            let (result, _) = run(threads, &[], &[12, 11, 10], &[]);
            assert_eq!(result, Err(10), "{threads} threads");
        }
    }

    #[test]
    fn a_panicking_job_fails_the_call_without_hanging_it() {
        let mut buffers = [[0u8; 1]; 4];
        let slots: Vec<&mut [u8]> = buffers.iter_mut().map(|b| &mut b[..]).collect();
        let result = pipeline(
            2,
            slots,
            0..16usize,
            |_, _| Ok(()),
            |k, _| {
                assert!(k != 5, "job 5 panics");
                Ok(0)
            },
            |_| Ok::<(), &str>(()),
            || "panicked",
        );
        assert_eq!(result, Err("panicked"));
    }
}

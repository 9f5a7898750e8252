//! The coordinator: one thread that owns all pipeline state and routes
//! events between its parts. Each input has one method: a batch from the
//! walk, results from a reader, a chance to hand out work, a chance to
//! report groups. What the trie says happened to a file ([`Placement`])
//! goes to the scheduler (reads to queue) and the statistics; nothing
//! else decides.
//!
//! Keys a [`KeySource`] knows are taken at hand-out time, before any read
//! is sent, and go through the same route as a reader's result.

use std::time::Instant;

use super::keys::{KeyRequest, KeySource, StageKey};
use super::msg::{Done, Outcome, Task, TaskKind};
use super::pool::Finished;
use super::schedule::{Job, Scheduler};
use super::stage::Step;
use super::stats::Stats;
use super::trie::{Placement, TooManyFiles, Trie};
use super::FindEvent;
use crate::entry::{EntryError, FileEntry};
use crate::group::DuplicateGroup;
use crate::hash::HashAlgo;
use crate::progress::ProgressTracker;

pub(crate) struct Coordinator<'a, F> {
    pub(crate) trie: Trie,
    pub(crate) sched: Scheduler,
    pub(crate) stats: Stats,
    keys: Option<&'a mut (dyn KeySource + 'static)>,
    algo: HashAlgo,
    progress: &'a dyn ProgressTracker,
    on_event: F,
    started: Instant,
}

impl<'a, F: FnMut(FindEvent<'_>)> Coordinator<'a, F> {
    pub(crate) fn new(
        trie: Trie,
        sched: Scheduler,
        keys: Option<&'a mut (dyn KeySource + 'static)>,
        algo: HashAlgo,
        progress: &'a dyn ProgressTracker,
        on_event: F,
    ) -> Self {
        Coordinator {
            trie,
            sched,
            stats: Stats::default(),
            keys,
            algo,
            progress,
            on_event,
            started: Instant::now(),
        }
    }

    fn route(&mut self, p: Placement) {
        self.stats.placed(&p);
        for (c, size) in p.reads() {
            self.sched.push(c, size, self.trie.cand_dev(c));
        }
    }

    /// Files from the walk.
    pub(crate) fn on_walk_batch(&mut self, batch: &[FileEntry]) -> Result<(), TooManyFiles> {
        for e in batch {
            let p = self.trie.add(e)?;
            self.route(p);
        }
        Ok(())
    }

    /// Something the walk could not read (counted by the walk itself).
    pub(crate) fn on_walk_error(&mut self, e: &EntryError) {
        (self.on_event)(FindEvent::Error(e));
    }

    fn error(&mut self, e: &EntryError) {
        self.stats.error(e.kind);
        (self.on_event)(FindEvent::Error(e));
    }

    /// The results of one job.
    pub(crate) fn on_results(&mut self, job: Finished) {
        let Finished {
            lane,
            large,
            results,
        } = job;
        let files = results.len() as u64;
        let (bytes, nanos) = results
            .iter()
            .fold((0u64, 0u64), |(b, n), d| (b + d.bytes_read, n + d.nanos));
        for d in results {
            self.sched.finished(self.trie.cand_size(d.cand));
            self.stats.read(&d);
            self.record(&d);
            self.apply(d.cand, d.outcome);
        }
        self.sched.job_done(lane, large, files, bytes, nanos);
    }

    /// Gives a key the readers computed to the key source.
    fn record(&mut self, d: &Done) {
        let Some(keys) = self.keys.as_deref_mut() else {
            return;
        };
        let key = match d.outcome {
            Outcome::Key(k) => StageKey::Partial(k),
            Outcome::Full(digest) => StageKey::Full(digest),
            _ => return,
        };
        let task = self.trie.task(d.cand);
        if let TaskKind::Stage(spec) = task.kind {
            let request = KeyRequest {
                path: &task.file.path,
                stamp: task.file.expect,
                spec,
            };
            keys.computed_after(&request, &key, d.nanos);
        }
    }

    fn apply(&mut self, c: u32, outcome: Outcome) {
        let p = match outcome {
            Outcome::Failed(e) => {
                self.error(&e);
                self.trie.failed(c)
            }
            Outcome::Cancelled => self.trie.failed(c),
            Outcome::Key(k) => self.trie.stage_done(c, k, None),
            Outcome::Full(digest) => self.trie.stage_done(c, digest.key(), Some(digest)),
            Outcome::Same => self.trie.verified(c),
            Outcome::Differ => self.trie.differs(c),
            Outcome::OtherChanged(e) => {
                self.error(&e);
                self.trie.other_changed(c)
            }
        };
        self.route(p);
    }

    /// Hands out work while the scheduler allows: tasks the key source
    /// answers are applied at once, the rest go to `send` with their job
    /// (false: the readers are gone).
    pub(crate) fn dispatch(&mut self, mut send: impl FnMut(&Job, Vec<Task>) -> bool) {
        while let Some(job) = self.sched.next_job() {
            let mut tasks: Vec<Task> = job.cands.iter().map(|&c| self.trie.task(c)).collect();
            if self.keys.is_some() {
                tasks = self.answer(tasks);
            }
            if tasks.is_empty() {
                // Nothing read: not a completion the controller may count.
                self.sched.job_skipped(job.lane, job.large);
            } else if !send(&job, tasks) {
                break;
            }
        }
    }

    /// Applies what the key source knows; returns the tasks left to read.
    fn answer(&mut self, tasks: Vec<Task>) -> Vec<Task> {
        let Some(keys) = self.keys.as_deref_mut() else {
            return tasks;
        };
        let requests: Vec<KeyRequest<'_>> = tasks
            .iter()
            .filter_map(|t| match t.kind {
                TaskKind::Stage(spec) => Some(KeyRequest {
                    path: &t.file.path,
                    stamp: t.file.expect,
                    spec,
                }),
                TaskKind::Verify(_) => None,
            })
            .collect();
        let mut answers = vec![None; requests.len()];
        keys.lookup(&requests, &mut answers);
        drop(requests);
        let mut answers = answers.into_iter();
        let mut left = Vec::with_capacity(tasks.len());
        for t in tasks {
            let TaskKind::Stage(spec) = t.kind else {
                left.push(t);
                continue;
            };
            match answers.next().flatten() {
                // An answer of the wrong kind is no answer: read instead.
                Some(key) if key.fits(spec) => {
                    self.sched.finished(t.file.expect.size);
                    self.stats.answered(Step::Stage(spec.stage));
                    let outcome = match key {
                        StageKey::Partial(k) => Outcome::Key(k),
                        StageKey::Full(d) => Outcome::Full(d),
                    };
                    self.apply(t.cand, outcome);
                }
                _ => left.push(t),
            }
        }
        left
    }

    /// Drops every queued read (the run was cancelled).
    pub(crate) fn abandon_queued(&mut self) {
        for (c, size) in self.sched.clear() {
            self.trie.failed(c);
            self.stats.abandoned(size);
        }
    }

    /// Reports groups that are new or have grown, and progress.
    pub(crate) fn emit(&mut self, force: bool) {
        for g in self.trie.take_due(force) {
            let started = self.started;
            self.stats
                .first_group
                .get_or_insert_with(|| started.elapsed());
            let group = DuplicateGroup {
                id: g.id,
                size: g.size,
                hash: g.digest,
                algo: self.algo,
                files: g.files,
            };
            (self.on_event)(FindEvent::Group(&group));
        }
        self.stats.report(self.sched.working(), self.progress);
    }

    /// The key source's end of run.
    pub(crate) fn finish_keys(&mut self) {
        if let Some(keys) = self.keys.as_deref_mut() {
            keys.finish();
        }
    }
}

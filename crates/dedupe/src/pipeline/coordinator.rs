//! The coordinator: one thread that owns all pipeline state and routes
//! events between its parts. Each input has one method: a batch from the
//! walk, results from a reader, a chance to hand out work, a chance to
//! report groups. What the trie says happened to a file ([`Placement`])
//! goes to the scheduler (reads to queue) and the statistics; nothing
//! else decides.
//!
//! Reads the trie asks for are first put to the [`KeySource`], if there is
//! one, on its own thread (`keyserve.rs`): all that gathered while its
//! last batch was out go in one batch. A key it knows goes through the
//! same route as a reader's result (and may ask for the next stage, put
//! to it in a later batch); only what it does not know is queued for the
//! readers. Batches, not single files, because a lookup's fixed cost (a
//! read transaction, its locks) was most of its price when jobs held one
//! large file each.

use std::time::Instant;

use super::keys::{ReadFacts, StageKey};
use super::keyserve::{Admit, Answer, Asked, KeyLink};
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

/// Most files in one batch put to the key source.
const MAX_ASK: usize = 4096;

pub(crate) struct Coordinator<'a, F> {
    pub(crate) trie: Trie,
    pub(crate) sched: Scheduler,
    pub(crate) stats: Stats,
    keys: Option<KeyLink>,
    /// Keys the readers computed, not yet passed to `keys`.
    computed: Vec<(Asked, StageKey, ReadFacts)>,
    /// Reads placed and not yet put to `keys`.
    asking: Vec<(u32, u64)>,
    algo: HashAlgo,
    progress: &'a dyn ProgressTracker,
    on_event: F,
    started: Instant,
    /// Whether groups go to `on_event` as they change.
    pub(crate) groups_wanted: bool,
}

impl<'a, F: FnMut(FindEvent<'_>)> Coordinator<'a, F> {
    pub(crate) fn new(
        trie: Trie,
        sched: Scheduler,
        keys: Option<KeyLink>,
        algo: HashAlgo,
        progress: &'a dyn ProgressTracker,
        on_event: F,
    ) -> Self {
        Coordinator {
            trie,
            sched,
            stats: Stats::default(),
            keys,
            computed: Vec::new(),
            asking: Vec::new(),
            algo,
            progress,
            on_event,
            started: Instant::now(),
            groups_wanted: true,
        }
    }

    fn route(&mut self, p: Placement) {
        self.stats.placed(&p);
        for (c, size) in p.reads() {
            // Byte comparisons are never asked: they must read.
            if !self.trie.verifies(c) && self.keys.as_ref().is_some_and(|k| k.asks(size)) {
                self.asking.push((c, size));
            } else {
                self.sched.push(c, size, self.trie.cand_dev(c));
            }
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

    /// Passes a walk event on to the caller as it is.
    pub(crate) fn observe(&mut self, ev: FindEvent<'_>) {
        (self.on_event)(ev);
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
        let size = self.trie.cand_size(d.cand);
        if !self
            .keys
            .as_ref()
            .is_some_and(|k| k.tells(size, d.from_disk))
        {
            return;
        }
        let key = match d.outcome {
            Outcome::Key(k) => StageKey::Partial(k),
            Outcome::Full(digest) => StageKey::Full(digest),
            _ => return,
        };
        let task = self.trie.task(d.cand);
        if let TaskKind::Stage(spec) = task.kind {
            let asked = Asked {
                cand: d.cand,
                size: task.file.expect.size,
                path: task.file.path,
                stamp: task.file.expect,
                spec,
            };
            self.computed
                .push((asked, key, ReadFacts::new(d.nanos, d.from_disk)));
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

    /// Hands out work while the scheduler allows; jobs go to `send`
    /// (false: the readers are gone).
    pub(crate) fn dispatch(&mut self, mut send: impl FnMut(&Job, Vec<Task>) -> bool) {
        while let Some(job) = self.sched.next_job() {
            let tasks: Vec<Task> = job.cands.iter().map(|&c| self.trie.task(c)).collect();
            if !send(&job, tasks) {
                break;
            }
        }
    }

    /// Reads placed and not yet queued (they wait for the key source, or
    /// are with it).
    pub(crate) fn unasked(&self) -> usize {
        self.asking.len() + self.keys.as_ref().map_or(0, KeyLink::out)
    }

    /// Puts the reads placed so far to the key source, unless its last
    /// batch is still out (then they gather for the next). Byte
    /// comparisons are never asked: they go to the readers at once, and
    /// take no place in the small-file trial (a place taken by a read that
    /// is never answered would hold the trial open, and every small file
    /// back, for good).
    pub(crate) fn ask_keys(&mut self) {
        let Some(keys) = &mut self.keys else {
            return;
        };
        if !self.computed.is_empty() {
            keys.computed(std::mem::take(&mut self.computed));
        }
        if keys.out() > 0 || self.asking.is_empty() {
            return;
        }
        // A batch owns its files' paths while it is out: bounded.
        let take = self.asking.len().min(MAX_ASK);
        let rest = self.asking.split_off(take);
        let mut batch = Vec::with_capacity(take);
        let mut held = Vec::new();
        for (c, size) in std::mem::replace(&mut self.asking, rest) {
            if self.trie.verifies(c) {
                self.sched.push(c, size, self.trie.cand_dev(c));
                continue;
            }
            match keys.admit(size) {
                Admit::Ask => {}
                Admit::Hold => {
                    held.push((c, size));
                    continue;
                }
                // Placed before the source's answers showed that asking
                // about small files does not pay: read.
                Admit::Read => {
                    self.sched.push(c, size, self.trie.cand_dev(c));
                    continue;
                }
            }
            let t = self.trie.task(c);
            match t.kind {
                TaskKind::Stage(spec) => batch.push(Asked {
                    cand: c,
                    size,
                    path: t.file.path,
                    stamp: t.file.expect,
                    spec,
                }),
                TaskKind::Verify(_) => self.sched.push(c, size, self.trie.cand_dev(c)),
            }
        }
        if !held.is_empty() {
            held.append(&mut self.asking);
            self.asking = held;
        }
        if batch.is_empty() {
            return;
        }
        if let Err(batch) = keys.ask(batch) {
            // The source's thread is gone: read everything.
            self.keys = None;
            for a in batch {
                self.sched.push(a.cand, a.size, self.trie.cand_dev(a.cand));
            }
            for (c, size) in std::mem::take(&mut self.asking) {
                self.sched.push(c, size, self.trie.cand_dev(c));
            }
        }
    }

    /// The key source's answers: a known key is applied as a reader's
    /// result would be; the rest is queued for the readers (which may
    /// open a device's lane: the caller sizes the reader pools after
    /// this, before a dispatch).
    pub(crate) fn on_answers(&mut self, answers: Vec<Answer>) {
        if let Some(keys) = &mut self.keys {
            keys.answered(&answers);
        }
        for a in answers {
            match a.key {
                Some(key) => {
                    self.stats.answered(Step::Stage(a.spec.stage));
                    let outcome = match key {
                        StageKey::Partial(k) => Outcome::Key(k),
                        StageKey::Full(d) => Outcome::Full(d),
                    };
                    self.apply(a.cand, outcome);
                }
                None => self.sched.push(a.cand, a.size, self.trie.cand_dev(a.cand)),
            }
        }
    }

    /// Answers that came back after the run was cancelled: their reads
    /// will not run.
    pub(crate) fn abandon_answers(&mut self, answers: Vec<Answer>) {
        if let Some(keys) = &mut self.keys {
            keys.answered(&answers);
        }
        for a in answers {
            self.trie.failed(a.cand);
            self.stats.abandoned(a.size);
        }
    }

    /// Drops every queued read (the run was cancelled).
    pub(crate) fn abandon_queued(&mut self) {
        let unasked = std::mem::take(&mut self.asking);
        for (c, size) in self.sched.clear().into_iter().chain(unasked) {
            self.trie.failed(c);
            self.stats.abandoned(size);
        }
    }

    /// Reports groups that are new or have grown, and progress.
    pub(crate) fn emit(&mut self, force: bool) {
        // Without a listener the groups due are only marked reported.
        let (due, count) = if self.groups_wanted {
            let due = self.trie.take_due(force);
            let n = due.len();
            (due, n)
        } else {
            (Vec::new(), self.trie.skip_due(force))
        };
        if count > 0 {
            let started = self.started;
            self.stats
                .first_group
                .get_or_insert_with(|| started.elapsed());
        }
        for g in due {
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

    /// Lets the key source's thread end (it then calls
    /// [`KeySource::finish`](super::keys::KeySource::finish)).
    pub(crate) fn finish_keys(&mut self) {
        if let Some(keys) = &self.keys {
            if !self.computed.is_empty() {
                keys.computed(std::mem::take(&mut self.computed));
            }
        }
        self.keys = None;
    }
}

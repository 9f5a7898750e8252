//! Adaptive I/O concurrency: how many readers one device gets, found while
//! the run goes on.
//!
//! Why it is needed: with the page cache warm, reading is hashing and
//! copying, so one reader per CPU is best and more only add switching. On
//! a cold cache every read waits for the device, and a flash or virtual
//! disk serves many requests at once: a deep queue is several times faster
//! (measured: the 100k-file tree cold took 7 s with 2 readers, 3 s with
//! 32). A slow or throttled device gains nothing from a deep queue; more
//! readers there only pile up requests. No fixed number fits all three,
//! and which one a run meets is only known once it reads.
//!
//! The rule is a hill climber over measured throughput, in the spirit of
//! TCP's congestion control: start at one reader per CPU (the warm
//! optimum), and after each window of about 100 ms compare the work done
//! per second with the previous window's.
//! * A step up that gains at least 10% is kept, and the climb goes on:
//!   doubling until a step fails, then by a quarter.
//! * A step up that does not gain is undone (more readers for the same
//!   throughput only add latency), and the climber holds.
//! * While holding, it probes again every 8 windows, alternately up and
//!   down, so a run that moves from cold to cached data (or from small
//!   files to large ones) follows; a step down is kept when it loses less
//!   than 5%.
//! * When the process already keeps every CPU busy (reads served from the
//!   page cache, or hashing is the limit) more readers cannot help: it
//!   never climbs then, and steps back towards one per CPU.
//! * A window in which the readers ran out of work (the walk has not found
//!   enough yet) says nothing about the device and decides nothing.
//!
//! Work is counted as bytes plus a fixed cost per file ([`FILE_COST`]), so
//! a window of many small files and one of a few large ones compare
//! fairly enough; the comparison is always between neighbouring windows,
//! whose mix is similar.

use std::fmt;

/// What opening and starting a file costs, in bytes of sequential reading.
/// Only the ratio between neighbouring windows matters, so a rough figure
/// does (a cold 4 KiB read costs about as much as a few hundred KiB
/// streamed, on flash and on disks alike within a factor of ten).
pub(crate) const FILE_COST: f64 = 128.0 * 1024.0;

/// Shortest window: enough completions to measure, short enough to climb
/// from 2 to 32 readers in half a second.
const WINDOW_NS: u64 = 100_000_000;
/// A step up is kept when it gains this much.
const GAIN: f64 = 1.10;
/// A step down is kept when it keeps this much.
const KEEP: f64 = 0.95;
/// Windows held before probing again.
const HOLD: u32 = 8;
/// Share of all CPUs the process uses above which reads are CPU-bound.
const CPU_BOUND: f64 = 0.85;
/// A window whose completions found no work waiting this often is starved.
const STARVED: f64 = 0.25;
/// Most readers one device gets.
pub(crate) const MAX_READERS: usize = 64;
/// Limit changes remembered for `--verbose`.
const HISTORY: usize = 24;

/// Why the limit changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Where it started: one reader per CPU.
    Start,
    /// Trying more readers.
    ProbeUp,
    /// Trying fewer readers.
    ProbeDown,
    /// A step up that did not gain enough was undone.
    NoGain,
    /// A step down lost too much and was undone.
    Lost,
    /// The CPUs are saturated: more readers cannot help.
    CpuBound,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Start => "start: one per CPU",
            Reason::ProbeUp => "throughput rose: more",
            Reason::ProbeDown => "probing fewer",
            Reason::NoGain => "no gain from more: back",
            Reason::Lost => "fewer was slower: back",
            Reason::CpuBound => "CPUs saturated: fewer",
        })
    }
}

/// One change of the limit: when (ms into the run), to what, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// Readers from then on.
    pub readers: usize,
    /// Why.
    pub reason: Reason,
}

struct Window {
    start_ns: u64,
    files: u64,
    bytes: u64,
    completions: u64,
    starved: u64,
}

/// A step being tried: the limit it came from and that limit's rate.
#[derive(Clone, Copy)]
struct Probe {
    from: usize,
    from_rate: f64,
    invalid: u32,
}

/// The controller of one device.
pub(crate) struct Controller {
    limit: usize,
    base: usize,
    fixed: bool,
    /// Still doubling (no step up has failed yet).
    slow_start: bool,
    win: Window,
    /// Rate at the current limit, when not probing.
    rate: Option<f64>,
    probe: Option<Probe>,
    hold: u32,
    next_down: bool,
    history: Vec<Change>,
    changes: u64,
    /// Readers x nanoseconds since `started_ns`, for the time-weighted mean.
    weighted: u128,
    started_ns: u64,
    last_ns: u64,
    peak: usize,
}

impl Controller {
    /// A controller starting at `base` readers (one per CPU); `fixed`: the
    /// user chose the number, so it never changes.
    pub(crate) fn new(base: usize, fixed: bool, now_ns: u64) -> Controller {
        let base = base.clamp(1, MAX_READERS);
        Controller {
            limit: base,
            base,
            fixed,
            slow_start: true,
            win: Window::new(now_ns),
            rate: None,
            probe: None,
            hold: 0,
            next_down: false,
            history: vec![Change {
                at_ms: now_ns / 1_000_000,
                readers: base,
                reason: Reason::Start,
            }],
            changes: 0,
            weighted: 0,
            started_ns: now_ns,
            last_ns: now_ns,
            peak: base,
        }
    }

    /// Readers this device may use now.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A job of `files` files and `bytes` bytes ended; `starved`: no work
    /// was waiting for the reader it freed.
    pub(crate) fn completed(&mut self, files: u64, bytes: u64, starved: bool) {
        self.win.files += files;
        self.win.bytes += bytes;
        self.win.completions += 1;
        self.win.starved += u64::from(starved);
    }

    /// Ends the window if it is long enough and decides; `cpu_share` is
    /// the share of all CPUs the process used meanwhile. Returns whether
    /// the limit changed.
    pub(crate) fn tick(&mut self, now_ns: u64, cpu_share: f64) -> bool {
        let dt = now_ns.saturating_sub(self.win.start_ns);
        if self.fixed || dt < WINDOW_NS || self.win.completions < self.limit as u64 {
            return false;
        }
        let win = std::mem::replace(&mut self.win, Window::new(now_ns));
        self.account(now_ns);
        if (win.starved as f64) > STARVED * win.completions as f64 {
            // The device was not the limit: nothing to learn. A probe
            // that sees only such windows gives up and goes back.
            if let Some(p) = &mut self.probe {
                p.invalid += 1;
                if p.invalid >= 3 {
                    let from = p.from;
                    self.probe = None;
                    self.rate = None;
                    return self.set(from, now_ns, Reason::NoGain);
                }
            }
            return false;
        }
        let rate = (win.files as f64 * FILE_COST + win.bytes as f64) * 1e9 / dt as f64;
        let cpu_bound = cpu_share >= CPU_BOUND;
        if let Some(p) = self.probe.take() {
            return self.judge(p, rate, cpu_bound, now_ns);
        }
        let Some(_) = self.rate.replace(rate) else {
            // First valid window at this limit: climb unless CPU-bound.
            return !cpu_bound && self.step_up(rate, now_ns);
        };
        if cpu_bound && self.limit > self.base {
            let to = (self.limit / 2).max(self.base);
            self.rate = None;
            return self.set(to, now_ns, Reason::CpuBound);
        }
        self.hold += 1;
        if self.hold < HOLD {
            return false;
        }
        self.hold = 0;
        self.next_down = !self.next_down;
        if self.next_down && self.limit > self.base {
            let to = (self.limit - (self.limit / 4).max(1)).max(self.base);
            self.probe = Some(Probe {
                from: self.limit,
                from_rate: rate,
                invalid: 0,
            });
            return self.set(to, now_ns, Reason::ProbeDown);
        }
        !cpu_bound && self.step_up(rate, now_ns)
    }

    fn judge(&mut self, p: Probe, rate: f64, cpu_bound: bool, now_ns: u64) -> bool {
        if self.limit > p.from {
            if rate >= p.from_rate * GAIN && !cpu_bound {
                self.rate = Some(rate);
                return !cpu_bound && self.step_up(rate, now_ns);
            }
            self.slow_start = false;
            self.rate = Some(p.from_rate);
            self.hold = 0;
            return self.set(p.from, now_ns, Reason::NoGain);
        }
        if rate >= p.from_rate * KEEP {
            self.rate = Some(rate);
            self.hold = 0;
            return false;
        }
        self.rate = Some(p.from_rate);
        self.hold = 0;
        self.set(p.from, now_ns, Reason::Lost)
    }

    fn step_up(&mut self, rate: f64, now_ns: u64) -> bool {
        let to = if self.slow_start {
            self.limit * 2
        } else {
            self.limit + (self.limit / 4).max(1)
        }
        .min(MAX_READERS);
        if to == self.limit {
            return false;
        }
        self.probe = Some(Probe {
            from: self.limit,
            from_rate: rate,
            invalid: 0,
        });
        self.set(to, now_ns, Reason::ProbeUp)
    }

    fn set(&mut self, to: usize, now_ns: u64, reason: Reason) -> bool {
        if to == self.limit {
            return false;
        }
        self.account(now_ns);
        self.limit = to;
        self.peak = self.peak.max(to);
        self.changes += 1;
        if self.history.len() < HISTORY {
            self.history.push(Change {
                at_ms: now_ns / 1_000_000,
                readers: to,
                reason,
            });
        }
        true
    }

    fn account(&mut self, now_ns: u64) {
        let dt = now_ns.saturating_sub(self.last_ns);
        self.weighted += u128::from(dt) * self.limit as u128;
        self.last_ns = now_ns;
    }

    /// What it did from its start (the device's first read) to `now_ns`,
    /// for the summary.
    pub(crate) fn report(&mut self, now_ns: u64) -> IoChoice {
        self.account(now_ns);
        let span = now_ns.saturating_sub(self.started_ns);
        IoChoice {
            device: String::new(),
            fixed: self.fixed,
            readers_end: self.limit,
            readers_peak: self.peak,
            readers_mean: if span == 0 {
                self.limit as f64
            } else {
                self.weighted as f64 / span as f64
            },
            changes: self.changes,
            history: self.history.clone(),
        }
    }
}

impl Window {
    fn new(now_ns: u64) -> Window {
        Window {
            start_ns: now_ns,
            files: 0,
            bytes: 0,
            completions: 0,
            starved: 0,
        }
    }
}

/// What the controller chose for one device.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IoChoice {
    /// The device, `major:minor`.
    pub device: String,
    /// The number was fixed by `--threads`.
    pub fixed: bool,
    /// Readers at the end of the run.
    pub readers_end: usize,
    /// Most readers at once.
    pub readers_peak: usize,
    /// Readers on average over the run (time-weighted).
    pub readers_mean: f64,
    /// How often the number changed.
    pub changes: u64,
    /// The first changes, with their reasons.
    #[serde(skip)]
    pub history: Vec<Change>,
}

#[cfg(test)]
#[path = "adapt_tests.rs"]
mod tests;

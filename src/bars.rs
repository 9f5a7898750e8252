//! Live progress bars on stderr: one for scanning, one for processing
//! (separate progress bars). The library reports counts
//! through `ProgressTracker`; this module only draws them.
//!
//! Counts land in atomics; a ticker thread redraws ten times a second, so
//! the walker's hot path never formats a string or takes a terminal lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dedupe::report::{human_bytes, plural};
use dedupe::{EntryError, ProgressTracker};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Default)]
struct Counts {
    dirs: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    scan_done: AtomicBool,
    /// The pipeline has every file: the candidate total is final.
    candidates_known: AtomicBool,
    /// Milliseconds from start to the end of the scan (0: not yet).
    scan_ms: AtomicU64,
    cand_files: AtomicU64,
    cand_bytes: AtomicU64,
    hashed: AtomicU64,
    settled_files: AtomicU64,
    settled_bytes: AtomicU64,
}

/// The two bars and the thread that redraws them.
pub struct Bars {
    multi: MultiProgress,
    scan: ProgressBar,
    process: Option<ProgressBar>,
    counts: Counts,
    started: Instant,
    stop: AtomicBool,
    ticker: Mutex<Option<JoinHandle<()>>>,
    /// Recent (time, files scanned, bytes hashed) samples, for rates that
    /// reflect now rather than the whole run.
    window: Mutex<std::collections::VecDeque<(Instant, u64, u64)>>,
    /// Whether the processing bar shows a bar yet (only once the pipeline
    /// has every file of the walk is the number of candidates known;
    /// before, a percentage would be a guess that runs ahead of the truth).
    known_total: AtomicBool,
    /// `--progress always` with a stderr that is not a terminal: indicatif
    /// draws nothing there, so a plain status line is printed every
    /// `LOG_EVERY` instead.
    log_lines: bool,
    last_log: Mutex<Instant>,
}

/// How often `--progress always` prints a status line to a non-terminal.
const LOG_EVERY: Duration = Duration::from_secs(2);

/// How far back the hashing rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(3);

impl Bars {
    /// Starts drawing; `processing` adds the second bar; `forced`: draw
    /// even if stderr is not a terminal.
    pub fn start(processing: bool, forced: bool) -> Arc<Bars> {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let scan = multi.add(ProgressBar::new_spinner());
        scan.set_style(
            ProgressStyle::with_template("{spinner:.green} scanning   {msg}")
                .expect("static template"),
        );
        let process = processing.then(|| {
            let pb = multi.add(ProgressBar::new(0));
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner:.cyan} processing {pos} of {len} candidates found so far  {msg}",
                )
                .expect("static template"),
            );
            pb
        });
        let bars = Arc::new(Bars {
            multi,
            scan,
            process,
            counts: Counts::default(),
            started: Instant::now(),
            stop: AtomicBool::new(false),
            ticker: Mutex::new(None),
            window: Mutex::new(std::collections::VecDeque::new()),
            known_total: AtomicBool::new(false),
            log_lines: false,
            last_log: Mutex::new(Instant::now()),
        });
        let mut bars = bars;
        if forced && bars.multi.is_hidden() {
            if let Some(b) = Arc::get_mut(&mut bars) {
                b.log_lines = true;
            }
        }
        let weak = Arc::downgrade(&bars);
        let handle = std::thread::Builder::new()
            .name("dedupe-progress".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                match weak.upgrade() {
                    Some(b) if !b.stop.load(Relaxed) => b.redraw(),
                    _ => break,
                }
            })
            .ok();
        *bars
            .ticker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = handle;
        bars
    }

    fn redraw(&self) {
        let c = &self.counts;
        let now = Instant::now();
        let files = c.files.load(Relaxed);
        let hashed = c.hashed.load(Relaxed);
        let scan_done = c.scan_done.load(Relaxed);
        // Rates over the last few seconds: what is happening now.
        let (files_rate, hash_rate) = {
            let mut w = self
                .window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            w.push_back((now, files, hashed));
            while w.len() > 2 && now.duration_since(w[0].0) > RATE_WINDOW {
                w.pop_front();
            }
            let (t0, f0, b0) = w[0];
            let secs = now.duration_since(t0).as_secs_f64();
            if secs > 0.0 {
                ((files - f0) as f64 / secs, (hashed - b0) as f64 / secs)
            } else {
                (0.0, 0.0)
            }
        };
        let scan_msg = if scan_done {
            let secs = (c.scan_ms.load(Relaxed) as f64 / 1000.0).max(1e-3);
            format!(
                "{}, {}, {} in {secs:.1} s, {} (done)",
                plural(files, "file", "files"),
                plural(c.dirs.load(Relaxed), "dir", "dirs"),
                human_bytes(c.bytes.load(Relaxed)),
                plural(c.errors.load(Relaxed), "error", "errors"),
            )
        } else {
            format!(
                "{}, {}, {}, {:.0} files/s, {}",
                plural(files, "file", "files"),
                plural(c.dirs.load(Relaxed), "dir", "dirs"),
                human_bytes(c.bytes.load(Relaxed)),
                files_rate,
                plural(c.errors.load(Relaxed), "error", "errors"),
            )
        };
        self.scan.set_message(scan_msg.clone());
        self.scan.tick();
        let mut process_msg = String::new();
        if let Some(pb) = &self.process {
            let known = self.counts.candidates_known.load(Relaxed);
            if known && !self.known_total.swap(true, Relaxed) {
                pb.set_style(
                    ProgressStyle::with_template(
                        "{spinner:.cyan} processing [{bar:30.cyan/blue}] {pos}/{len} candidates  {msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
            }
            let (len, pos) = (c.cand_files.load(Relaxed), c.settled_files.load(Relaxed));
            pb.set_length(len);
            pb.set_position(pos);
            // An ETA only once the work is known, and only from bytes
            // still to read at the current rate.
            let eta = if known && hash_rate > 0.0 {
                let left = c
                    .cand_bytes
                    .load(Relaxed)
                    .saturating_sub(c.settled_bytes.load(Relaxed));
                format!(", ETA {:.0}s", left as f64 / hash_rate)
            } else {
                String::new()
            };
            // A rate is never negative; the cast saturates.
            #[allow(clippy::cast_sign_loss)]
            let rate = hash_rate as u64;
            let msg = format!(
                "{} hashed, {}/s{eta}",
                human_bytes(hashed),
                human_bytes(rate)
            );
            process_msg = if known {
                format!("; processing {pos}/{len} candidates, {msg}")
            } else {
                format!("; processing {pos} of {len} candidates found so far, {msg}")
            };
            pb.set_message(msg);
        }
        if self.log_lines {
            let mut last = self
                .last_log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now.duration_since(*last) >= LOG_EVERY {
                *last = now;
                crate::ui::warn(format_args!("dedupe: scanning {scan_msg}{process_msg}"));
            }
        }
    }

    /// Whether indicatif draws nothing (stderr is not a terminal).
    pub fn is_hidden(&self) -> bool {
        self.multi.is_hidden()
    }

    /// Prints a line above the bars.
    pub fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }

    /// Stops and clears the bars (a log of status lines ends with one).
    pub fn finish(&self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self
            .ticker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = h.join();
        }
        if self.log_lines {
            if let Some(t) = Instant::now().checked_sub(LOG_EVERY) {
                *self
                    .last_log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = t;
            }
            self.redraw();
        }
        self.scan.finish_and_clear();
        if let Some(pb) = &self.process {
            pb.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

impl ProgressTracker for Bars {
    fn dir_scanned(&self, files: u64, bytes: u64) {
        self.counts.dirs.fetch_add(1, Relaxed);
        self.counts.files.fetch_add(files, Relaxed);
        self.counts.bytes.fetch_add(bytes, Relaxed);
    }
    fn entry_error(&self, _error: &EntryError) {
        self.counts.errors.fetch_add(1, Relaxed);
    }
    fn scan_finished(&self) {
        let ms = self.started.elapsed().as_millis().max(1) as u64;
        self.counts.scan_ms.store(ms, Relaxed);
        self.counts.scan_done.store(true, Relaxed);
    }
    fn candidates_added(&self, files: u64, bytes: u64) {
        self.counts.cand_files.fetch_add(files, Relaxed);
        self.counts.cand_bytes.fetch_add(bytes, Relaxed);
    }
    fn candidates_known(&self) {
        self.counts.candidates_known.store(true, Relaxed);
    }
    fn bytes_hashed(&self, bytes: u64) {
        self.counts.hashed.fetch_add(bytes, Relaxed);
    }
    fn candidates_settled(&self, files: u64, bytes: u64) {
        self.counts.settled_files.fetch_add(files, Relaxed);
        self.counts.settled_bytes.fetch_add(bytes, Relaxed);
    }
}

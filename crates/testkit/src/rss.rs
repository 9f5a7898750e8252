//! Resident memory of this process, read from `/proc/self/status`, for
//! `--stats` output and the memory-profiling tests. Linux only; elsewhere
//! every call returns `None`.

use std::fs;

fn status_field_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Current resident set size in bytes.
pub fn current() -> Option<u64> {
    status_field_kib("VmRSS:").map(|k| k * 1024)
}

/// Peak resident set size in bytes since start (or since [`reset_peak`]).
pub fn peak() -> Option<u64> {
    status_field_kib("VmHWM:").map(|k| k * 1024)
}

/// Resets the peak to the current size (Linux 4.0+), so a test can measure
/// one phase of its own process. Returns false where not supported.
pub fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_memory_of_this_process() {
        let cur = super::current().expect("procfs is mounted");
        let peak = super::peak().unwrap();
        // The high-water mark is never below what is resident now.
        assert!(cur > 0 && peak >= cur, "rss {cur}, peak {peak}");
    }
}

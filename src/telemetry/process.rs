//! The standard `process_*` metrics of Prometheus's client libraries (CPU seconds, resident
//! and virtual memory, open and maximum file descriptors, start time), read from Linux's
//! `/proc` at scrape time, and `api_guard_build_info`.
//!
//! Read by hand rather than with a crate (`procfs`, or `prometheus`'s process collector):
//! six numbers from three small files, parsed in a few lines with no `unsafe` (this crate
//! forbids it) and no new dependency. Two constants of the Linux ABI are assumed:
//! `/proc/[pid]/stat` counts CPU time and start time in `USER_HZ` ticks, which is 100 on every
//! architecture Rust ships a Linux target for that reports through `/proc` (x86, ARM, RISC-V,
//! POWER, s390x); and `/proc/self/status` gives `VmRSS` in kB, so no page size is needed.
//! Elsewhere than Linux, or if a file cannot be read, the metrics are left out.

use super::Exposition;

/// `USER_HZ`: the unit of the time fields of `/proc/[pid]/stat` (see the module docs).
const USER_HZ: f64 = 100.0;

/// The version of this build, and the commit it was built from: `API_GUARD_COMMIT` or
/// `git rev-parse` at build time (build.rs), else `unknown`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// See [`VERSION`].
pub const COMMIT: &str = match option_env!("API_GUARD_BUILD_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// What the process metrics are made of, as read from `/proc`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory, in bytes.
    pub virtual_bytes: u64,
    /// Open file descriptors.
    pub open_fds: usize,
    /// The soft limit on open file descriptors, if any.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// This process's numbers, or `None` where `/proc` cannot be read.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        parse(&stat, &status, &boot, &limits, open_fds)
    }

    /// Writes the `process_*` metrics.
    pub fn expose(&self, out: &mut Exposition) {
        out.counter_f64(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds,
        );
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            self.resident_bytes,
        );
        out.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            self.virtual_bytes,
        );
        out.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            self.open_fds,
        );
        if let Some(max) = self.max_fds {
            out.gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max,
            );
        }
        out.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            self.start_time_seconds,
        );
    }
}

/// Writes `api_guard_build_info{version, commit} 1`.
pub fn expose_build_info(out: &mut Exposition) {
    out.info(
        "api_guard_build_info",
        "The version and commit of this build (always 1)",
        &[("version", VERSION), ("commit", COMMIT)],
    );
}

/// The numbers from the texts of `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and
/// `/proc/self/limits`.
fn parse(
    stat: &str,
    status: &str,
    boot: &str,
    limits: &str,
    open_fds: usize,
) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces or ')': the fields
    // after it start past the last ')'. There, field 3 (state) is index 0.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (utime, stime) = (field(14)?, field(15)?);
    let start_ticks = field(22)?;
    let virtual_bytes = field(23)?;
    let resident_kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let boot_time: u64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let max_fds = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok());
    // Ticks and seconds stay far below 2^52: exact as f64.
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        resident_bytes: resident_kb * 1024,
        virtual_bytes,
        open_fds,
        max_fds,
        start_time_seconds: boot_time as f64 + start_ticks as f64 / USER_HZ,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_read_past_a_command_name_with_spaces_and_parentheses() {
        // Fields 1-23 of proc(5)'s stat, with utime 250, stime 50, starttime 12345 and
        // vsize 1048576; the name holds ") (" to trip a parser that splits on the first ')'.
        let stat = "4242 (api ) (guard) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 12345 1048576 300 rest";
        let status = "Name:\tapi-guard\nVmRSS:\t    2048 kB\nThreads:\t9\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        let stats = parse(stat, status, boot, limits, 7).unwrap();
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: 3.0,
                resident_bytes: 2048 * 1024,
                virtual_bytes: 1_048_576,
                open_fds: 7,
                max_fds: Some(1024),
                start_time_seconds: 1_700_000_123.45,
            }
        );
        assert_eq!(parse("garbage", status, boot, limits, 7), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_reads_as_started_in_the_past_with_memory_and_fds() {
        let stats = ProcessStats::read().expect("/proc is readable on Linux");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(stats.start_time_seconds <= now + 1.0, "{stats:?}");
        assert!(stats.start_time_seconds > now - 86_400.0, "{stats:?}");
        assert!(stats.resident_bytes > 0 && stats.open_fds >= 3, "{stats:?}");
    }
}

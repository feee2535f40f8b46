//! Timing samples, their median and 90th percentile, the report table, and the process's
//! memory figures from `/proc/self/status`.

use std::fmt::Write as _;
use std::time::Duration;

/// Durations of repeated runs of one operation.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    /// The value at percentile `p` (nearest rank), zero when empty.
    pub fn percentile(&self, p: u32) -> Duration {
        let mut v = self.0.clone();
        v.sort_unstable();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = (v.len() * p as usize).div_ceil(100).max(1);
        v[rank - 1]
    }

    /// The median.
    pub fn median(&self) -> Duration {
        self.percentile(50)
    }

    /// The 90th percentile.
    pub fn p90(&self) -> Duration {
        self.percentile(90)
    }
}

/// A human-scaled duration: `83.1 µs`, `1.92 ms`, `3.40 s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// `1234567.0` as `1,234,567`.
pub fn fmt_count(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a row's target bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// A time the median must stay under.
    Under(Duration),
    /// A rate (per second) the median must reach.
    AtLeast(f64),
    /// Informational: no target.
    None,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// The target.
    pub target: Target,
    /// The samples.
    pub samples: Samples,
    /// For rates: units per sample (events in a batch), so that rate = units / time.
    pub units: Option<f64>,
    /// Anything worth saying next to it.
    pub note: String,
}

impl Row {
    fn cells(&self) -> [String; 6] {
        let (median, p90) = match self.units {
            // The p90 of a rate is the rate of the 90th-percentile (slow) sample.
            Some(u) => (
                format!("{}/s", fmt_count(u / self.samples.median().as_secs_f64())),
                format!("{}/s", fmt_count(u / self.samples.p90().as_secs_f64())),
            ),
            None => (
                fmt_duration(self.samples.median()),
                fmt_duration(self.samples.p90()),
            ),
        };
        let (target, verdict) = match self.target {
            Target::Under(t) => (
                format!("< {}", fmt_duration(t)),
                if self.samples.median() < t {
                    "pass"
                } else {
                    "MISS"
                },
            ),
            Target::AtLeast(r) => {
                let got = self.units.unwrap_or(1.0) / self.samples.median().as_secs_f64();
                (
                    format!("≥ {}/s", fmt_count(r)),
                    if got >= r { "pass" } else { "MISS" },
                )
            }
            Target::None => ("—".to_owned(), "info"),
        };
        [
            self.name.clone(),
            target,
            median,
            p90,
            format!("{verdict} (n={})", self.samples.0.len()),
            self.note.clone(),
        ]
    }
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let head = ["measurement", "target", "median", "p90", "result", "note"];
    let body: Vec<Vec<String>> = rows.iter().map(|r| r.cells().to_vec()).collect();
    markdown_table(&head, &body)
}

/// A markdown table of `head` and `body`, each column padded to its widest cell.
pub fn markdown_table(head: &[&str], body: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from("|");
        for (c, w) in cells.zip(&widths) {
            let _ = write!(s, " {c}{} |", " ".repeat(w - c.chars().count()));
        }
        s
    };
    let mut out = line(&mut head.iter().copied());
    out.push('\n');
    out.push('|');
    for w in &widths {
        let _ = write!(out, "{}|", "-".repeat(w + 2));
    }
    for r in body {
        out.push('\n');
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out.push('\n');
    out
}

/// What a figure was measured on, for a bench's header: the build kind, the CPU count and the
/// load average (a busy machine measures slower).
pub fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!(
        "{} build; {} CPUs; load average {load}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    )
}

/// A `kB` field of `/proc/self/status` (`VmHWM`, `VmRSS`), in KiB.
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// CPU time this process has used so far, all its threads (living and ended) together, user
/// and system: from `/proc/self/stat`, in clock ticks of 10 ms. Unlike elapsed time, it does
/// not grow while other tenants of a shared machine hold the CPU. `None` off Linux.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Resets the peak resident set size (`VmHWM`) to the current one (Linux: writing 5 to
/// `/proc/self/clear_refs`), so the next peak belongs to what runs next. False when refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let s = Samples((1..=10).map(Duration::from_millis).collect());
        assert_eq!(s.median(), Duration::from_millis(5));
        assert_eq!(s.p90(), Duration::from_millis(9));
        assert_eq!(Samples::default().median(), Duration::ZERO);
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(fmt_count(1_234_567.4), "1,234,567");
        assert_eq!(fmt_count(999.0), "999");
    }

    #[test]
    fn cpu_time_is_readable_here_and_grows() {
        let before = process_cpu_time().expect("/proc/self/stat");
        let t = std::time::Instant::now();
        let mut x = 0_u64;
        while t.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_cpu_time().expect("/proc/self/stat") > before);
    }

    #[test]
    fn memory_is_readable_here() {
        assert!(proc_status_kib("VmRSS").is_some_and(|k| k > 0));
    }
}

//! What the benchmarks share: JSON lines on stdout, statistics, command-line
//! values, and the roaming targets.
//!
//! Benchmarks print one JSON object per line on stdout ([`emit`]), then a
//! human-readable table whose lines start with `#`; progress goes to stderr.

use std::io::Write as _;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Targets of a roam (issue 8): p95 gap.
pub const TARGET_P95_GAP_MS: f64 = 50.0;
/// Targets of a roam: max gap.
pub const TARGET_MAX_GAP_MS: f64 = 100.0;

/// One JSON object on one line of stdout, flushed at once.
pub fn emit(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// The start of every lab program: its arguments from `parse` (an empty
/// error asks for the usage), then its prerequisites (root, babeld, ip,
/// grpcurl). `Err` is the exit status to end with: 0 after the usage, 2 for
/// a bad argument or a missing prerequisite.
pub fn start<A>(
    program: &str,
    usage: &str,
    parse: impl FnOnce() -> Result<A, String>,
) -> Result<A, std::process::ExitCode> {
    let args = match parse() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{usage}");
            return Err(std::process::ExitCode::SUCCESS);
        }
        Err(e) => {
            eprintln!("{program}: {e}\n\n{usage}");
            return Err(std::process::ExitCode::from(2));
        }
    };
    let missing = crate::missing_prerequisites();
    if !missing.is_empty() {
        eprintln!("{program}: needs {}", missing.join(", "));
        return Err(std::process::ExitCode::from(2));
    }
    Ok(args)
}

/// The end of every benchmark: the summary as a JSON line, the `#` table
/// (unless `json_only`), and the exit status.
pub fn finish(
    summary: &Value,
    json_only: bool,
    print_table: impl Fn(&Value),
    failed: bool,
) -> std::process::ExitCode {
    emit(summary);
    if !json_only {
        print_table(summary);
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// Milliseconds, rounded to microseconds.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `b - a` in milliseconds, negative when `b` is earlier.
pub fn ms_between(a: Instant, b: Instant) -> f64 {
    if b >= a {
        ms(b - a)
    } else {
        -ms(a - b)
    }
}

/// `values` sorted (total order on floats).
pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Median of sorted values (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied()
    } else {
        let (a, b) = (v.get(mid.checked_sub(1)?)?, v.get(mid)?);
        Some(((a + b) / 2.0 * 1e3).round() / 1e3)
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank - 1).copied()
}

/// `n`, min, median, p95 and max of `values` (nulls when empty).
pub fn stats(values: Vec<f64>) -> Value {
    let v = sorted(values);
    json!({
        "n": v.len(),
        "min": v.first(),
        "median": median(&v),
        "p95": percentile(&v, 95.0),
        "max": v.last(),
    })
}

/// [`stats`] of durations in milliseconds.
pub fn duration_stats(values: &[Duration]) -> Value {
    stats(values.iter().map(|d| ms(*d)).collect())
}

/// min, median, mean, max and total of counts.
pub fn count_stats(values: &[u64]) -> Value {
    let total: u64 = values.iter().sum();
    let v = sorted(values.iter().map(|x| *x as f64).collect());
    json!({
        "min": v.first(),
        "median": median(&v),
        "mean": if v.is_empty() { None } else { Some((total as f64 / v.len() as f64 * 100.0).round() / 100.0) },
        "max": v.last(),
        "total": total,
    })
}

/// Whether gaps (ms), losses after link-up, failures and loops meet the
/// targets: p95 gap <= 50 ms, max <= 100 ms, 0 lost, 0 failed, 0 loops.
pub fn targets_met(gaps_ms: &[f64], lost_after_link_up: u64, failed: u64, loops: u64) -> Value {
    let v = sorted(gaps_ms.to_vec());
    let p95 = percentile(&v, 95.0);
    let max = v.last().copied();
    let p95_ok = p95.is_some_and(|p| p <= TARGET_P95_GAP_MS);
    let max_ok = max.is_some_and(|m| m <= TARGET_MAX_GAP_MS);
    json!({
        "p95_gap_ms": p95_ok,
        "max_gap_ms": max_ok,
        "no_loss_after_link_up": lost_after_link_up == 0,
        "no_failed": failed == 0,
        "no_loops": loops == 0,
        "all": p95_ok && max_ok && lost_after_link_up == 0 && failed == 0 && loops == 0,
    })
}

/// Command-line arguments, taken one at a time with typed values.
#[derive(Debug)]
pub struct Flags {
    args: std::vec::IntoIter<String>,
}

impl Flags {
    /// The process's arguments after the program name.
    pub fn from_env() -> Flags {
        Flags::new(std::env::args().skip(1).collect())
    }

    /// Arguments from a list.
    pub fn new(args: Vec<String>) -> Flags {
        Flags {
            args: args.into_iter(),
        }
    }

    /// The next flag (or `None` at the end).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<String> {
        self.args.next()
    }

    /// The value of `flag`, as text.
    pub fn text(&mut self, flag: &str) -> Result<String, String> {
        self.args.next().ok_or(format!("{flag} needs a value"))
    }

    /// The value of `flag` as a whole number in `range`.
    pub fn number(&mut self, flag: &str, range: RangeInclusive<usize>) -> Result<usize, String> {
        let v = self.text(flag)?;
        parse_number(flag, &v, &range)
    }

    /// The value of `flag` as seconds in `range`.
    pub fn seconds(&mut self, flag: &str, range: RangeInclusive<f64>) -> Result<Duration, String> {
        let v = self.text(flag)?;
        parse_seconds(flag, &v, &range)
    }

    /// The value of `flag` as a comma-separated list of numbers in `range`, without repeats.
    pub fn numbers(
        &mut self,
        flag: &str,
        range: RangeInclusive<usize>,
    ) -> Result<Vec<usize>, String> {
        let v = self.text(flag)?;
        let mut out = Vec::new();
        for s in v.split(',') {
            let n = parse_number(flag, s.trim(), &range)?;
            if !out.contains(&n) {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// The value of `flag` as a comma-separated list of seconds in `range`.
    pub fn seconds_list(
        &mut self,
        flag: &str,
        range: RangeInclusive<f64>,
    ) -> Result<Vec<Duration>, String> {
        let v = self.text(flag)?;
        v.split(',')
            .map(|s| parse_seconds(flag, s.trim(), &range))
            .collect()
    }
}

fn parse_number(flag: &str, v: &str, range: &RangeInclusive<usize>) -> Result<usize, String> {
    let n: usize = v
        .parse()
        .map_err(|_| format!("{flag}: not a number: {v:?}"))?;
    if !range.contains(&n) {
        return Err(format!("{flag}: {n} is not in {range:?}"));
    }
    Ok(n)
}

fn parse_seconds(flag: &str, v: &str, range: &RangeInclusive<f64>) -> Result<Duration, String> {
    let secs: f64 = v
        .parse()
        .map_err(|_| format!("{flag}: not a number: {v:?}"))?;
    if !range.contains(&secs) {
        return Err(format!("{flag}: {secs} s is out of range {range:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        let v = sorted(vec![5.0, 1.0, 3.0, 2.0]);
        assert_eq!(v, [1.0, 2.0, 3.0, 5.0]);
        assert_eq!(median(&v), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(percentile(&v, 95.0), Some(5.0));
        assert_eq!(percentile(&v, 50.0), Some(2.0));
        let s = stats(vec![]);
        assert_eq!(s["n"], 0);
        assert!(s["median"].is_null());
        assert_eq!(count_stats(&[1, 2, 3])["total"], 6);
    }

    #[test]
    fn targets() {
        assert_eq!(targets_met(&[10.0, 20.0], 0, 0, 0)["all"], true);
        let t = targets_met(&[10.0, 1_040.0], 0, 0, 0);
        assert_eq!(t["max_gap_ms"], false);
        assert_eq!(t["all"], false);
        assert_eq!(targets_met(&[], 0, 0, 0)["all"], false);
        assert_eq!(targets_met(&[10.0], 0, 0, 1)["no_loops"], false);
    }

    #[test]
    fn flags() {
        let mut f = Flags::new(
            [
                "--roams", "20", "--hops", "1,3,1", "--hello", "0.5", "--roams", "0",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(f.next().as_deref(), Some("--roams"));
        assert_eq!(f.number("--roams", 1..=100), Ok(20));
        assert_eq!(f.next().as_deref(), Some("--hops"));
        assert_eq!(f.numbers("--hops", 1..=3), Ok(vec![1, 3]));
        assert_eq!(f.next().as_deref(), Some("--hello"));
        assert_eq!(
            f.seconds("--hello", 0.05..=60.0),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(f.next().as_deref(), Some("--roams"));
        assert!(f.number("--roams", 1..=100).is_err());
        assert!(f.text("--x").is_err());
    }
}

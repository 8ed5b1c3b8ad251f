//! What the benches share besides the client: their knobs and their figures.

use std::time::Duration;

/// The environment variable `name` as a number, or `default` when it is unset or not one.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0 to 1) of `sorted`, the nearest rank; `None` for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let index = (last as f64 * p).round() as usize;
    sorted.get(index.min(last)).copied()
}

/// The median, 99th percentile and maximum of some durations, in milliseconds: NaN for none,
/// so a table prints `NaN` and a comparison with a target fails.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Figures {
    pub fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        let ms = |p: f64| percentile(&times, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        Self {
            n: times.len(),
            p50: ms(0.5),
            p99: ms(0.99),
            max: ms(1.0),
        }
    }
}

/// Prints one line of figures for `label`.
pub fn report(label: &str, times: Vec<Duration>) {
    let Figures { n, p50, p99, max } = Figures::of(times);
    println!("{label:<28} n={n:<5} p50={p50:>8.3} ms  p99={p99:>8.3} ms  max={max:>8.3} ms");
}

/// CPU time a process has used so far (all its threads, user and system).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are the 14th and 15th fields of the whole line.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// Time every core of the machine has spent busy and in all, from `/proc/stat`: the share of
/// the machine a window used is the difference of the first over that of the second.
pub fn machine_time() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map_or(Vec::new(), |rest| {
            rest.split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect()
        });
    // user nice system idle iowait irq softirq steal: idle and iowait are the idle ones.
    let all: u64 = ticks.iter().take(8).sum();
    let idle: u64 = ticks.iter().skip(3).take(2).sum();
    let tick =
        |n: u64| Duration::from_secs_f64(n as f64 / rustix::param::clock_ticks_per_second() as f64);
    (tick(all.saturating_sub(idle)), tick(all))
}

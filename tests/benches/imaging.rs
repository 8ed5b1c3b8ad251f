//! Photo processing on one thread: the time `photon::imaging::derive` takes for a 12-megapixel
//! (4032×3024) JPEG such as a phone writes, the photos per second that makes, the memory one
//! job holds at its peak, and the derivatives' sizes.
//!
//! ```sh
//! cargo bench -p photon-tests --bench imaging
//! PHOTON_BENCH_N=60 cargo bench -p photon-tests --bench imaging
//! PHOTON_BENCH_IMAGING_SAVE=/tmp/photo.jpg cargo bench -p photon-tests --bench imaging
//! ```
//!
//! The photo is the test fixture a phone would write (`imaging::fixtures::jpeg`: baseline
//! 4:2:0 with per-pixel grain, which makes it several megabytes, and a phone's EXIF).
//!
//! Peak memory is the growth of the resident set (`VmHWM` after a reset through
//! `/proc/self/clear_refs`) while one job runs in a fresh process of this bench, with the photo's
//! bytes already in memory: a process that has run jobs before reuses freed heap pages, which
//! would hide part of the next job's peak. (A counting global allocator would need `unsafe`,
//! which the workspace forbids.)

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use photon::imaging::{Derived, Format, Limits, derive, fixtures};
use photon_tests::bench::{Figures, env_usize};

const WIDTH: u32 = 4032;
const HEIGHT: u32 = 3024;
/// Set to a photo's path in the child process that measures one job's memory.
const CHILD: &str = "PHOTON_BENCH_IMAGING_CHILD";

fn main() {
    if let Ok(path) = std::env::var(CHILD) {
        measure_one_job(&path);
        return;
    }
    let runs = env_usize("PHOTON_BENCH_N", 30).max(1);

    let started = Instant::now();
    let jpeg = fixtures::jpeg(WIDTH, HEIGHT, Some(&fixtures::phone_exif()));
    if let Ok(path) = std::env::var("PHOTON_BENCH_IMAGING_SAVE") {
        std::fs::write(path, &jpeg).unwrap();
    }
    println!(
        "imaging: a {WIDTH}×{HEIGHT} JPEG of {:.2} MB, made in {:.1} s",
        jpeg.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let mut derived = derive(&jpeg, Format::Jpeg, &limits()).expect("the photo derives");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        derived = derive(&jpeg, Format::Jpeg, &limits()).expect("the photo derives");
        times.push(started.elapsed());
    }
    let total: Duration = times.iter().sum();
    let Figures { n, p50, p99, max } = Figures::of(times);
    println!("  derive, one thread: n={n} p50={p50:.1} ms p99={p99:.1} ms max={max:.1} ms");
    println!(
        "  throughput: {:.2} photos/s on one thread",
        n as f64 / total.as_secs_f64()
    );
    print_derivatives(&derived);

    let path =
        std::env::temp_dir().join(format!("photon-bench-imaging-{}.jpg", std::process::id()));
    std::fs::write(&path, &jpeg).unwrap();
    let peaks: Vec<u64> = (0..3)
        .map(|_| {
            let output = Command::new(std::env::current_exe().unwrap())
                .env(CHILD, &path)
                .output()
                .unwrap();
            assert!(output.status.success(), "the measuring process failed");
            String::from_utf8(output.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "  peak memory of one job (resident growth, fresh process): {:.1} MiB (runs: {})",
        mib(*peaks.iter().max().unwrap()),
        peaks
            .iter()
            .map(|&kib| format!("{:.1}", mib(kib)))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn limits() -> Limits {
    Limits {
        max_pixels: 100_000_000,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

fn print_derivatives(derived: &Derived) {
    println!(
        "  photo {}×{}; preview {}×{} {:.1} KB; thumbnail {}×{} {:.1} KB; ThumbHash {} chars",
        derived.width,
        derived.height,
        derived.preview.width,
        derived.preview.height,
        derived.preview.bytes.len() as f64 / 1e3,
        derived.thumbnail.width,
        derived.thumbnail.height,
        derived.thumbnail.bytes.len() as f64 / 1e3,
        derived.thumbhash.len()
    );
}

/// In the child: one job, printing how many KiB the resident set grew by at its peak.
fn measure_one_job(path: &str) {
    let jpeg = std::fs::read(path).unwrap();
    let before = status_kib("VmRSS");
    // Resets the high-water mark to the current resident set.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let derived = derive(&jpeg, Format::Jpeg, &limits()).expect("the photo derives");
    let peak = status_kib("VmHWM");
    drop(derived);
    println!("{}", peak.saturating_sub(before));
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

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
//! The photo is made here: gradients, bands and per-pixel noise (a sensor's grain, which is
//! what makes a phone's JPEG several megabytes), encoded by a plain baseline encoder below
//! (interleaved 4:2:0 with the standard Huffman tables, as cameras write).
//!
//! Peak memory is the growth of the resident set (`VmHWM` after a reset through
//! `/proc/self/clear_refs`) while one job runs in a fresh process of this bench, with the photo's
//! bytes already in memory: a process that has run jobs before reuses freed heap pages, which
//! would hide part of the next job's peak. (A counting global allocator would need `unsafe`,
//! which the workspace forbids.)

#![allow(clippy::unwrap_used)]

use std::f32::consts::PI;
use std::process::Command;
use std::time::{Duration, Instant};

use photon::imaging::{Derived, Format, Limits, derive};
use photon_tests::bench::{Figures, env_usize};

const WIDTH: usize = 4032;
const HEIGHT: usize = 3024;
/// Set to a photo's path in the child process that measures one job's memory.
const CHILD: &str = "PHOTON_BENCH_IMAGING_CHILD";

fn main() {
    if let Ok(path) = std::env::var(CHILD) {
        measure_one_job(&path);
        return;
    }
    let runs = env_usize("PHOTON_BENCH_N", 30).max(1);

    let started = Instant::now();
    let jpeg = photo_jpeg(WIDTH, HEIGHT, 90);
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

/// A photo-like RGB image: smooth colour gradients, soft bands and per-pixel grain.
fn photo_pixels(width: usize, height: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        let fy = y as f32 / height as f32;
        for x in 0..width {
            let fx = x as f32 / width as f32;
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let base = [
                40.0 + 170.0 * fx + 25.0 * (fx * 40.0).sin(),
                30.0 + 160.0 * fy + 35.0 * ((fx + fy) * 25.0).cos(),
                180.0 - 120.0 * fx + 50.0 * (fy * 60.0).sin() * (fx * 9.0).cos(),
            ];
            for (c, value) in base.into_iter().enumerate() {
                let grain = ((state >> (c * 8)) & 0x1F) as f32 - 16.0;
                rgb.push((value + grain).clamp(0.0, 255.0) as u8);
            }
        }
    }
    rgb
}

fn photo_jpeg(width: usize, height: usize, quality: u32) -> Vec<u8> {
    encode_jpeg(&photo_pixels(width, height), width, height, quality)
}

// A baseline JPEG encoder: enough of ITU-T T.81 for a benchmark's input.

const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Tables K.1 and K.2, in natural order.
const LUMA_QUANT: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMA_QUANT: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// Tables K.3 to K.6: code counts per length, then the symbols.
const DC_LUMA: ([u8; 16], &[u8]) = (
    [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
);
const DC_CHROMA: ([u8; 16], &[u8]) = (
    [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
);
const AC_LUMA: ([u8; 16], &[u8]) = (
    [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D],
    &[
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52,
        0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6,
        0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3,
        0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8,
        0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ],
);
const AC_CHROMA: ([u8; 16], &[u8]) = (
    [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77],
    &[
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33,
        0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18,
        0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4,
        0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA,
        0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7,
        0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ],
);

/// A Huffman table's (code, length) by symbol, from its counts and symbols (canonical order).
fn codes((counts, symbols): ([u8; 16], &[u8])) -> [(u16, u8); 256] {
    let mut table = [(0, 0); 256];
    let (mut code, mut next) = (0u16, 0);
    for (length, &count) in counts.iter().enumerate() {
        for &symbol in &symbols[next..next + usize::from(count)] {
            table[usize::from(symbol)] = (code, length as u8 + 1);
            code += 1;
        }
        next += usize::from(count);
        code <<= 1;
    }
    table
}

struct Bits {
    out: Vec<u8>,
    buffer: u32,
    count: u32,
}

impl Bits {
    fn put(&mut self, value: u16, length: u8) {
        self.buffer = (self.buffer << length) | u32::from(value);
        self.count += u32::from(length);
        while self.count >= 8 {
            let byte = (self.buffer >> (self.count - 8)) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0);
            }
            self.count -= 8;
            self.buffer &= (1 << self.count) - 1;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            let pad = 8 - self.count as u8;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

/// The magnitude category of a coefficient and its bits as T.81 F.1.2.1 codes them.
fn category(value: i32) -> (u8, u16) {
    let size = (32 - value.unsigned_abs().leading_zeros()) as u8;
    let bits = if value < 0 { value - 1 } else { value };
    (size, (bits as u16) & ((1u32 << size) - 1) as u16)
}

struct Component {
    quant: [f32; 64],
    dc: [(u16, u8); 256],
    ac: [(u16, u8); 256],
    previous_dc: i32,
}

impl Component {
    fn block(&mut self, bits: &mut Bits, cosines: &[[f32; 8]; 8], samples: &[f32; 64]) {
        // Separable forward DCT: rows, then columns.
        let mut rows = [0f32; 64];
        for y in 0..8 {
            for u in 0..8 {
                rows[y * 8 + u] = (0..8).map(|x| cosines[u][x] * samples[y * 8 + x]).sum();
            }
        }
        let mut quantized = [0i32; 64];
        for v in 0..8 {
            for u in 0..8 {
                let coefficient: f32 = (0..8).map(|y| cosines[v][y] * rows[y * 8 + u]).sum();
                quantized[v * 8 + u] = (coefficient / self.quant[v * 8 + u]).round() as i32;
            }
        }
        let dc = quantized[0];
        let (size, value) = category(dc - self.previous_dc);
        self.previous_dc = dc;
        let (code, length) = self.dc[usize::from(size)];
        bits.put(code, length);
        bits.put(value, size);
        let mut run = 0;
        for &at in &ZIGZAG[1..] {
            let coefficient = quantized[at];
            if coefficient == 0 {
                run += 1;
                continue;
            }
            while run > 15 {
                let (code, length) = self.ac[0xF0];
                bits.put(code, length);
                run -= 16;
            }
            let (size, value) = category(coefficient);
            let (code, length) = self.ac[(run << 4) | usize::from(size)];
            bits.put(code, length);
            bits.put(value, size);
            run = 0;
        }
        if run > 0 {
            let (code, length) = self.ac[0x00];
            bits.put(code, length);
        }
    }
}

fn scaled_quant(base: &[u16; 64], quality: u32) -> [u16; 64] {
    let scale = if quality < 50 {
        5000 / quality
    } else {
        200 - 2 * quality
    };
    base.map(|q| ((u32::from(q) * scale + 50) / 100).clamp(1, 255) as u16)
}

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(body);
}

/// Baseline, interleaved, 4:2:0; both sides must be multiples of 16.
fn encode_jpeg(rgb: &[u8], width: usize, height: usize, quality: u32) -> Vec<u8> {
    assert!(width.is_multiple_of(16) && height.is_multiple_of(16));
    let luma_quant = scaled_quant(&LUMA_QUANT, quality);
    let chroma_quant = scaled_quant(&CHROMA_QUANT, quality);

    let mut out = vec![0xFF, 0xD8];
    segment(&mut out, 0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    for (id, table) in [(0u8, &luma_quant), (1, &chroma_quant)] {
        let mut body = vec![id];
        body.extend(ZIGZAG.iter().map(|&at| table[at] as u8));
        segment(&mut out, 0xDB, &body);
    }
    let mut frame = vec![8];
    frame.extend_from_slice(&(height as u16).to_be_bytes());
    frame.extend_from_slice(&(width as u16).to_be_bytes());
    frame.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    segment(&mut out, 0xC0, &frame);
    for (class_id, (counts, symbols)) in [
        (0x00, DC_LUMA),
        (0x10, AC_LUMA),
        (0x01, DC_CHROMA),
        (0x11, AC_CHROMA),
    ] {
        let mut body = vec![class_id];
        body.extend_from_slice(&counts);
        body.extend_from_slice(symbols);
        segment(&mut out, 0xC4, &body);
    }
    segment(&mut out, 0xDA, &[3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);

    let mut cosines = [[0f32; 8]; 8];
    for (u, row) in cosines.iter_mut().enumerate() {
        let c = if u == 0 { 1.0 / 2f32.sqrt() } else { 1.0 };
        for (x, value) in row.iter_mut().enumerate() {
            *value = 0.5 * c * ((2 * x + 1) as f32 * u as f32 * PI / 16.0).cos();
        }
    }
    let component = |quant: &[u16; 64], dc, ac| Component {
        quant: quant.map(f32::from),
        dc: codes(dc),
        ac: codes(ac),
        previous_dc: 0,
    };
    let mut y_component = component(&luma_quant, DC_LUMA, AC_LUMA);
    let mut cb_component = component(&chroma_quant, DC_CHROMA, AC_CHROMA);
    let mut cr_component = component(&chroma_quant, DC_CHROMA, AC_CHROMA);

    let mut bits = Bits {
        out,
        buffer: 0,
        count: 0,
    };
    let ycbcr = |x: usize, y: usize| {
        let at = (y * width + x) * 3;
        let (r, g, b) = (
            f32::from(rgb[at]),
            f32::from(rgb[at + 1]),
            f32::from(rgb[at + 2]),
        );
        (
            0.299 * r + 0.587 * g + 0.114 * b - 128.0,
            -0.168_736 * r - 0.331_264 * g + 0.5 * b,
            0.5 * r - 0.418_688 * g - 0.081_312 * b,
        )
    };
    for mcu_y in (0..height).step_by(16) {
        for mcu_x in (0..width).step_by(16) {
            let mut luma = [[0f32; 64]; 4];
            let (mut cb, mut cr) = ([0f32; 64], [0f32; 64]);
            for dy in 0..16 {
                for dx in 0..16 {
                    let (l, b, r) = ycbcr(mcu_x + dx, mcu_y + dy);
                    luma[(dy / 8) * 2 + dx / 8][(dy % 8) * 8 + dx % 8] = l;
                    let at = (dy / 2) * 8 + dx / 2;
                    cb[at] += b / 4.0;
                    cr[at] += r / 4.0;
                }
            }
            for block in &luma {
                y_component.block(&mut bits, &cosines, block);
            }
            cb_component.block(&mut bits, &cosines, &cb);
            cr_component.block(&mut bits, &cosines, &cr);
        }
    }
    let mut out = bits.finish();
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

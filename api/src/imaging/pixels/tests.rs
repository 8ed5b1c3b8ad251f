use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::ImageEncoder;
use image::codecs::png::PngEncoder;

use super::*;

fn limits() -> Limits {
    Limits {
        max_pixels: 50_000_000,
        deadline: Instant::now() + Duration::from_secs(60),
    }
}

/// The colours of a test image's four quadrants, as stored.
const TOP_LEFT: [u8; 3] = [220, 30, 30];
const TOP_RIGHT: [u8; 3] = [30, 200, 30];
const BOTTOM_LEFT: [u8; 3] = [30, 30, 220];
const BOTTOM_RIGHT: [u8; 3] = [240, 240, 240];

fn quadrants(width: u32, height: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            rgb.extend_from_slice(match (x < width / 2, y < height / 2) {
                (true, true) => &TOP_LEFT,
                (false, true) => &TOP_RIGHT,
                (true, false) => &BOTTOM_LEFT,
                (false, false) => &BOTTOM_RIGHT,
            });
        }
    }
    rgb
}

fn jpeg_of(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 95)
        .encode(
            rgb,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("the test image encodes");
    out
}

fn png_of(samples: &[u8], width: u32, height: u32, colour: image::ExtendedColorType) -> Vec<u8> {
    png_with_profile(samples, width, height, colour, None)
}

fn png_with_profile(
    samples: &[u8],
    width: u32,
    height: u32,
    colour: image::ExtendedColorType,
    icc: Option<Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = PngEncoder::new(&mut out);
    if let Some(icc) = icc {
        encoder.set_icc_profile(icc).expect("PNG takes a profile");
    }
    encoder
        .write_image(samples, width, height, colour)
        .expect("the test image encodes");
    out
}

/// Decodes a derivative with a decoder other than the one that made it would be.
fn decode_jpeg(encoded: &Encoded) -> Vec<u8> {
    let mut decoder = jpeg_decoder::Decoder::new(&encoded.bytes[..]);
    let pixels = decoder.decode().expect("the derivative decodes");
    let info = decoder.info().expect("decoded");
    assert_eq!(
        (u32::from(info.width), u32::from(info.height)),
        (encoded.width, encoded.height),
        "the JPEG's own size is the one reported"
    );
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    pixels
}

fn pixel(rgb: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
    let at = (y as usize * width as usize + x as usize) * 3;
    [rgb[at], rgb[at + 1], rgb[at + 2]]
}

fn assert_close(actual: [u8; 3], expected: [u8; 3], tolerance: u8, what: &str) {
    assert!(
        actual
            .iter()
            .zip(expected)
            .all(|(a, e)| a.abs_diff(e) <= tolerance),
        "{what}: {actual:?} is not within {tolerance} of {expected:?}"
    );
}

/// The stored quadrant colours at the displayed top-left, top-right, bottom-left and
/// bottom-right, sampled at each quadrant's centre.
fn displayed_quadrants(encoded: &Encoded) -> [[u8; 3]; 4] {
    let rgb = decode_jpeg(encoded);
    let (w, h) = (encoded.width, encoded.height);
    [
        pixel(&rgb, w, w / 4, h / 4),
        pixel(&rgb, w, 3 * w / 4, h / 4),
        pixel(&rgb, w, w / 4, 3 * h / 4),
        pixel(&rgb, w, 3 * w / 4, 3 * h / 4),
    ]
}

const ALL_ORIENTATIONS: [Orientation; 8] = [
    Orientation::Normal,
    Orientation::FlipHorizontal,
    Orientation::Rotate180,
    Orientation::FlipVertical,
    Orientation::Transpose,
    Orientation::Rotate90,
    Orientation::Transverse,
    Orientation::Rotate270,
];

/// Where the stored top-left and top-right corners are shown, from the EXIF specification's
/// table of where the 0th row and 0th column go (TIFF 6.0, tag 274). Positions index
/// [top-left, top-right, bottom-left, bottom-right].
fn exif_positions(orientation: Orientation) -> (usize, usize) {
    match orientation {
        // 0th row at the top, 0th column on the left.
        Orientation::Normal => (0, 1),
        // 0th row at the top, 0th column on the right.
        Orientation::FlipHorizontal => (1, 0),
        // 0th row at the bottom, 0th column on the right.
        Orientation::Rotate180 => (3, 2),
        // 0th row at the bottom, 0th column on the left.
        Orientation::FlipVertical => (2, 3),
        // 0th row on the left, 0th column at the top.
        Orientation::Transpose => (0, 2),
        // 0th row on the right, 0th column at the top.
        Orientation::Rotate90 => (1, 3),
        // 0th row on the right, 0th column at the bottom.
        Orientation::Transverse => (3, 1),
        // 0th row on the left, 0th column at the bottom.
        Orientation::Rotate270 => (2, 0),
    }
}

#[test]
fn every_orientation_turns_the_derivatives_and_swaps_the_reported_size() {
    let (width, height) = (800, 600);
    let jpeg = jpeg_of(&quadrants(width, height), width, height);
    for orientation in ALL_ORIENTATIONS {
        let rendered = render(&jpeg, Format::Jpeg, orientation, &limits())
            .unwrap_or_else(|e| panic!("{orientation:?}: {e}"));
        let swapped = matches!(
            orientation,
            Orientation::Transpose
                | Orientation::Rotate90
                | Orientation::Transverse
                | Orientation::Rotate270
        );
        let expected = if swapped { (600, 800) } else { (800, 600) };
        assert_eq!(
            (rendered.width, rendered.height),
            expected,
            "{orientation:?}: the photo's displayed size"
        );
        assert_eq!(
            (rendered.preview.width, rendered.preview.height),
            expected,
            "{orientation:?}: a preview is never upscaled, only turned"
        );
        let thumbnail = if swapped { (288, 384) } else { (384, 288) };
        assert_eq!(
            (rendered.thumbnail.width, rendered.thumbnail.height),
            thumbnail,
            "{orientation:?}: the thumbnail"
        );
        let (top_left_at, top_right_at) = exif_positions(orientation);
        for derivative in [&rendered.preview, &rendered.thumbnail] {
            let shown = displayed_quadrants(derivative);
            assert_close(
                shown[top_left_at],
                TOP_LEFT,
                24,
                &format!("{orientation:?}: the stored top-left quadrant"),
            );
            assert_close(
                shown[top_right_at],
                TOP_RIGHT,
                24,
                &format!("{orientation:?}: the stored top-right quadrant"),
            );
        }
    }
}

#[test]
fn a_large_photo_gets_a_1600_preview_and_a_384_thumbnail_with_its_aspect() {
    // 4000×2250 decodes at half scale (2000×1125), then resizes to 1600×900.
    for (width, height) in [(4000, 2250), (2250, 4000), (3001, 1999)] {
        let jpeg = jpeg_of(&quadrants(width, height), width, height);
        let rendered =
            render(&jpeg, Format::Jpeg, Orientation::Normal, &limits()).expect("renders");
        assert_eq!((rendered.width, rendered.height), (width, height));
        for (derivative, side) in [
            (&rendered.preview, PREVIEW_SIDE),
            (&rendered.thumbnail, THUMBNAIL_SIDE),
        ] {
            assert_eq!(
                derivative.width.max(derivative.height),
                side,
                "{width}×{height}: the longer side"
            );
            let aspect = f64::from(width) / f64::from(height);
            let derived = f64::from(derivative.width) / f64::from(derivative.height);
            let one_pixel = 1.0 / f64::from(derivative.width.min(derivative.height));
            assert!(
                (aspect - derived).abs() <= aspect * one_pixel,
                "{width}×{height}: {}×{} keeps the aspect",
                derivative.width,
                derivative.height
            );
            decode_jpeg(derivative);
        }
    }
}

#[test]
fn a_small_image_is_never_upscaled() {
    let (width, height) = (200, 100);
    let png = png_of(
        &quadrants(width, height),
        width,
        height,
        image::ExtendedColorType::Rgb8,
    );
    let rendered = render(&png, Format::Png, Orientation::Normal, &limits()).expect("renders");
    for derivative in [&rendered.preview, &rendered.thumbnail] {
        assert_eq!((derivative.width, derivative.height), (200, 100));
        let shown = displayed_quadrants(derivative);
        assert_close(shown[0], TOP_LEFT, 24, "top-left");
        assert_close(shown[3], BOTTOM_RIGHT, 24, "bottom-right");
    }
}

#[test]
fn a_one_pixel_wide_strip_keeps_a_side_of_one_pixel() {
    let png = png_of(&vec![128; 60_000], 1, 60_000, image::ExtendedColorType::L8);
    let rendered = render(&png, Format::Png, Orientation::Normal, &limits()).expect("renders");
    assert_eq!((rendered.width, rendered.height), (1, 60_000));
    assert_eq!((rendered.preview.width, rendered.preview.height), (1, 1600));
    assert_eq!(
        (rendered.thumbnail.width, rendered.thumbnail.height),
        (1, 384)
    );
    let rendered =
        render(&png, Format::Png, Orientation::Rotate90, &limits()).expect("renders turned");
    assert_eq!(
        (rendered.thumbnail.width, rendered.thumbnail.height),
        (384, 1)
    );
}

/// The CRC-32 PNG chunks carry (ISO 3309), so a forged header is well formed.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose IHDR claims `width`×`height` RGB, followed by a tiny IDAT.
fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], body: &[u8]| {
        png.extend_from_slice(&(body.len() as u32).to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(body);
        png.extend_from_slice(&typed);
        png.extend_from_slice(&crc32(&typed).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    png
}

/// A real JPEG whose frame header is rewritten to claim `width`×`height`.
fn jpeg_header_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = jpeg_of(&quadrants(16, 16), 16, 16);
    let sof = jpeg
        .windows(2)
        .position(|marker| marker == [0xFF, 0xC0])
        .expect("a baseline frame header");
    // FF C0, length (2), precision (1), height (2), width (2)
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

fn assert_refused_with_size(result: Result<Rendered, ImageError>, size: &str) {
    match result {
        Err(ImageError::Invalid(reason)) => assert!(
            reason.contains(size),
            "the reason names the declared size: {reason}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_decompression_bomb_header_is_refused_before_decoding() {
    let started = Instant::now();
    let png = png_header_claiming(60_000, 60_000);
    assert_refused_with_size(
        render(&png, Format::Png, Orientation::Normal, &limits()),
        "60000×60000",
    );
    let jpeg = jpeg_header_claiming(60_000, 60_000);
    assert_refused_with_size(
        render(&jpeg, Format::Jpeg, Orientation::Normal, &limits()),
        "60000×60000",
    );
    // 3.6 billion pixels would take seconds to allocate and zero, let alone decode.
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_side_over_65535_or_of_zero_is_refused_whatever_the_pixel_count() {
    let generous = Limits {
        max_pixels: u64::MAX,
        ..limits()
    };
    assert_refused_with_size(
        render(
            &png_header_claiming(1, 100_000),
            Format::Png,
            Orientation::Normal,
            &generous,
        ),
        "1×100000",
    );
    assert_refused_with_size(
        render(
            &png_header_claiming(0, 10),
            Format::Png,
            Orientation::Normal,
            &generous,
        ),
        "0×10",
    );
}

#[test]
fn a_photo_over_the_pixel_limit_is_refused() {
    let jpeg = jpeg_of(&quadrants(100, 100), 100, 100);
    let tight = Limits {
        max_pixels: 9_999,
        ..limits()
    };
    assert_refused_with_size(
        render(&jpeg, Format::Jpeg, Orientation::Normal, &tight),
        "100×100",
    );
}

#[test]
fn truncated_files_are_invalid() {
    let (width, height) = (300, 200);
    let rgb = quadrants(width, height);
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(&rgb, width, height, image::ExtendedColorType::Rgb8)
        .expect("the test image encodes");
    for (format, bytes) in [
        (Format::Jpeg, jpeg_of(&rgb, width, height)),
        (
            Format::Png,
            png_of(&rgb, width, height, image::ExtendedColorType::Rgb8),
        ),
        (Format::Webp, webp),
    ] {
        assert!(
            render(&bytes, format, Orientation::Normal, &limits()).is_ok(),
            "{format:?}: the whole file renders"
        );
        let half = &bytes[..bytes.len() / 2];
        assert!(
            matches!(
                render(half, format, Orientation::Normal, &limits()),
                Err(ImageError::Invalid(_))
            ),
            "{format:?}: half of the file is invalid"
        );
    }
}

#[test]
fn garbage_behind_a_valid_signature_is_invalid() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for (format, signature) in [
        (Format::Jpeg, &b"\xFF\xD8\xFF\xE0"[..]),
        (Format::Png, &b"\x89PNG\r\n\x1a\n"[..]),
        (Format::Webp, &b"RIFF\x00\x10\x00\x00WEBPVP8 "[..]),
    ] {
        let bytes = [signature, &noise].concat();
        assert!(
            matches!(
                render(&bytes, format, Orientation::Normal, &limits()),
                Err(ImageError::Invalid(_))
            ),
            "{format:?}"
        );
        assert!(matches!(
            render(signature, format, Orientation::Normal, &limits()),
            Err(ImageError::Invalid(_))
        ));
    }
}

#[test]
fn a_passed_deadline_times_the_job_out() {
    let jpeg = jpeg_of(&quadrants(64, 64), 64, 64);
    let late = Limits {
        deadline: Instant::now(),
        ..limits()
    };
    assert_eq!(
        render(&jpeg, Format::Jpeg, Orientation::Normal, &late).map(|_| ()),
        Err(ImageError::TimedOut)
    );
}

/// One colour over a 64×64 PNG tagged with `icc`, rendered, and read back from the preview.
fn rendered_colour(colour: [u8; 3], icc: Option<Vec<u8>>) -> [u8; 3] {
    let rgb: Vec<u8> = colour.iter().copied().cycle().take(64 * 64 * 3).collect();
    let png = png_with_profile(&rgb, 64, 64, image::ExtendedColorType::Rgb8, icc);
    let rendered = render(&png, Format::Png, Orientation::Normal, &limits()).expect("renders");
    pixel(&decode_jpeg(&rendered.preview), 64, 32, 32)
}

#[test]
fn a_display_p3_photo_is_converted_to_srgb() {
    let p3 = moxcms::ColorProfile::new_display_p3()
        .encode()
        .expect("moxcms writes a Display P3 profile");
    let colour = [200, 60, 50];
    let expected = {
        let transform = moxcms::ColorProfile::new_display_p3()
            .create_transform_8bit(
                moxcms::Layout::Rgb,
                &moxcms::ColorProfile::new_srgb(),
                moxcms::Layout::Rgb,
                moxcms::TransformOptions::default(),
            )
            .expect("a P3 to sRGB transform");
        let mut out = [0; 3];
        transform.transform(&colour, &mut out).expect("converts");
        out
    };
    // A P3 red is redder than the same numbers in sRGB.
    assert!(expected[0] > colour[0] + 10, "{expected:?}");
    assert_close(rendered_colour(colour, Some(p3)), expected, 3, "P3 to sRGB");
}

#[test]
fn an_srgb_untagged_or_malformed_profile_leaves_the_colours_alone() {
    let colour = [200, 60, 50];
    let srgb = moxcms::ColorProfile::new_srgb()
        .encode()
        .expect("moxcms writes an sRGB profile");
    let mut malformed = srgb.clone();
    malformed.truncate(200);
    for (what, icc) in [
        ("sRGB", Some(srgb)),
        ("untagged", None),
        ("malformed", Some(malformed)),
        ("not a profile", Some(b"not an ICC profile at all".to_vec())),
    ] {
        assert_close(rendered_colour(colour, icc), colour, 3, what);
    }
}

#[test]
fn transparency_is_flattened_onto_white_and_grey_stays_grey() {
    // The top half transparent, the bottom half opaque.
    let mut rgba = Vec::new();
    for y in 0..64 {
        let alpha = if y < 32 { 0 } else { 255 };
        rgba.extend(std::iter::repeat_n([10, 20, 30, alpha], 64).flatten());
    }
    let png = png_of(&rgba, 64, 64, image::ExtendedColorType::Rgba8);
    let rendered = render(&png, Format::Png, Orientation::Normal, &limits()).expect("renders");
    let rgb = decode_jpeg(&rendered.preview);
    assert_close(pixel(&rgb, 64, 32, 8), [255, 255, 255], 3, "transparent");
    assert_close(pixel(&rgb, 64, 32, 56), [10, 20, 30], 4, "opaque");

    let grey = png_of(&[90; 64 * 64], 64, 64, image::ExtendedColorType::L8);
    let rendered = render(&grey, Format::Png, Orientation::Rotate90, &limits()).expect("renders");
    let mut decoder = jpeg_decoder::Decoder::new(&rendered.preview.bytes[..]);
    let pixels = decoder.decode().expect("a grey preview decodes");
    assert_eq!(
        decoder.info().map(|info| info.pixel_format),
        Some(jpeg_decoder::PixelFormat::L8)
    );
    assert!(pixels.iter().all(|&l| l.abs_diff(90) <= 2));
}

#[test]
fn a_sixteen_bit_png_renders() {
    let (width, height) = (40u32, 30u32);
    let samples: Vec<u8> = quadrants(width, height)
        .into_iter()
        .flat_map(|v| (u16::from(v) * 257).to_be_bytes())
        .collect();
    let png = png_of(&samples, width, height, image::ExtendedColorType::Rgb16);
    let rendered = render(&png, Format::Png, Orientation::Normal, &limits()).expect("renders");
    let shown = displayed_quadrants(&rendered.preview);
    assert_close(shown[0], TOP_LEFT, 24, "top-left");
    assert_close(shown[3], BOTTOM_RIGHT, 24, "bottom-right");
}

#[test]
fn the_thumbhash_decodes_to_the_photos_shape_and_colour() {
    let (width, height) = (600, 300);
    let rgb: Vec<u8> = [200u8, 40, 40]
        .into_iter()
        .cycle()
        .take(width * height * 3)
        .collect();
    let jpeg = jpeg_of(&rgb, width as u32, height as u32);
    for (orientation, aspect) in [(Orientation::Normal, 2.0), (Orientation::Rotate90, 0.5)] {
        let rendered = render(&jpeg, Format::Jpeg, orientation, &limits()).expect("renders");
        let hash = STANDARD
            .decode(&rendered.thumbhash)
            .expect("the ThumbHash is base64");
        let (w, h, _) = ::thumbhash::thumb_hash_to_rgba(&hash).expect("the ThumbHash decodes");
        assert!(w > 0 && h > 0);
        let approximate = ::thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash)
            .expect("the ThumbHash has an aspect");
        // The hash keeps the aspect in sevenths of the longer side: 2:1 comes back as 7:4.
        assert!(
            (0.8..1.25).contains(&(approximate / aspect)),
            "{orientation:?}: aspect {approximate}, not about {aspect}"
        );
        let (r, g, b, a) =
            ::thumbhash::thumb_hash_to_average_rgba(&hash).expect("the ThumbHash has a colour");
        assert!(
            (r - 200.0 / 255.0).abs() < 0.05
                && (g - 40.0 / 255.0).abs() < 0.05
                && (b - 40.0 / 255.0).abs() < 0.05,
            "average {r} {g} {b}"
        );
        assert!((a - 1.0).abs() < 0.01);
    }
}

#[test]
fn a_webp_renders() {
    let (width, height) = (120, 90);
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(
            &quadrants(width, height),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("the test image encodes");
    let rendered = render(&webp, Format::Webp, Orientation::Rotate180, &limits()).expect("renders");
    let shown = displayed_quadrants(&rendered.preview);
    assert_close(shown[3], TOP_LEFT, 24, "turned half round");
}

#[test]
fn a_webp_icc_chunk_longer_than_the_file_is_ignored() {
    let mut riff = b"RIFF\0\0\0\0WEBP".to_vec();
    riff.extend_from_slice(b"ICCP");
    riff.extend_from_slice(&u32::MAX.to_le_bytes());
    riff.extend_from_slice(b"short");
    assert_eq!(decode::webp_icc_profile(&riff), None);
    let mut whole = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
    whole.extend_from_slice(&10u32.to_le_bytes());
    whole.extend_from_slice(&[0; 10]);
    whole.extend_from_slice(b"ICCP");
    whole.extend_from_slice(&3u32.to_le_bytes());
    whole.extend_from_slice(b"abc\0");
    assert_eq!(decode::webp_icc_profile(&whole), Some(&b"abc"[..]));
}

#[cfg(not(feature = "heif"))]
#[test]
fn heif_needs_the_feature() {
    assert!(matches!(
        render(
            b"\0\0\0\x18ftypheic",
            Format::Heif,
            Orientation::Normal,
            &limits()
        ),
        Err(ImageError::Unsupported(_))
    ));
}

#[cfg(feature = "heif")]
mod heif {
    use super::*;
    use crate::imaging::heif::encode_fixture;

    #[test]
    fn a_heic_fixture_renders_upright_whatever_the_exif_says() {
        let exif = b"MM\0\x2a\0\0\0\x08\0\0\0\0\0\0";
        let heic = encode_fixture(640, 480, Some(exif));
        assert_eq!(Format::sniff(&heic), Some(Format::Heif));
        // libheif applies the file's own rotation; an EXIF orientation is not applied again.
        let rendered =
            render(&heic, Format::Heif, Orientation::Rotate90, &limits()).expect("renders");
        assert_eq!((rendered.width, rendered.height), (640, 480));
        assert_eq!(
            (rendered.thumbnail.width, rendered.thumbnail.height),
            (384, 288)
        );
        let rgb = decode_jpeg(&rendered.preview);
        assert_close(
            pixel(&rgb, 640, 40, 30),
            [255, 0, 0],
            40,
            "the marked corner",
        );
    }

    #[test]
    fn a_truncated_or_oversized_heic_is_invalid() {
        let heic = encode_fixture(64, 64, None);
        assert!(matches!(
            render(
                &heic[..heic.len() / 2],
                Format::Heif,
                Orientation::Normal,
                &limits()
            ),
            Err(ImageError::Invalid(_))
        ));
        let tight = Limits {
            max_pixels: 4095,
            ..limits()
        };
        assert_refused_with_size(
            render(&heic, Format::Heif, Orientation::Normal, &tight),
            "64×64",
        );
    }
}

#[test]
fn progressive_grey_and_cmyk_jpegs_render() {
    let (width, height) = (3200u32, 2400u32);
    let mut progressive = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut progressive, 90);
    encoder.set_progressive(true);
    encoder
        .encode(
            &quadrants(width, height),
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("the test image encodes");
    let rendered = render(&progressive, Format::Jpeg, Orientation::Normal, &limits())
        .expect("a progressive JPEG renders");
    assert_eq!(
        (rendered.preview.width, rendered.preview.height),
        (1600, 1200)
    );
    let shown = displayed_quadrants(&rendered.preview);
    assert_close(shown[1], TOP_RIGHT, 24, "progressive, top-right");

    let mut grey = Vec::new();
    jpeg_encoder::Encoder::new(&mut grey, 90)
        .encode(&[100; 64 * 48], 64, 48, jpeg_encoder::ColorType::Luma)
        .expect("the test image encodes");
    let rendered = render(&grey, Format::Jpeg, Orientation::Rotate270, &limits())
        .expect("a grey JPEG renders");
    assert_eq!((rendered.width, rendered.height), (48, 64));

    // Half of the image without ink, half in full black ink (CMYK, as printers' files are).
    let cmyk: Vec<u8> = (0..64 * 64)
        .flat_map(|i| {
            if i < 32 * 64 {
                [0, 0, 0, 0]
            } else {
                [0, 0, 0, 255]
            }
        })
        .collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(&cmyk, 64, 64, jpeg_encoder::ColorType::Cmyk)
        .expect("the test image encodes");
    let rendered =
        render(&jpeg, Format::Jpeg, Orientation::Normal, &limits()).expect("a CMYK JPEG renders");
    let rgb = decode_jpeg(&rendered.preview);
    assert_close(pixel(&rgb, 64, 32, 8), [255, 255, 255], 4, "no ink");
    assert_close(pixel(&rgb, 64, 32, 56), [0, 0, 0], 4, "black ink");
}

//! JPEG: a walk over the marker segments that copies those the pixels need and drops the rest.

use super::tiff;
use crate::imaging::ImageError;
use crate::imaging::metadata::Orientation;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;
const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;

/// One marker and what belongs to it, as it lies in the file.
#[derive(Debug, Clone, Copy)]
pub(in crate::imaging) struct Segment<'a> {
    /// The marker code: the byte after 0xFF.
    pub marker: u8,
    /// What follows the length field (empty for a standalone marker).
    pub payload: &'a [u8],
    /// Where `payload` starts in the file.
    #[cfg_attr(
        not(any(test, feature = "fixtures")),
        allow(dead_code, reason = "the test images edit headers in place")
    )]
    pub payload_at: usize,
    /// The whole segment from its first 0xFF, and for SOS the entropy-coded data after it.
    pub bytes: &'a [u8],
}

/// The segments from SOI to EOI; whatever follows EOI (iPhones append an MPF gain map and a
/// depth map there, each with its own EXIF) is not part of the image and is not returned.
pub(in crate::imaging) fn segments(bytes: &[u8]) -> Result<Vec<Segment<'_>>, ImageError> {
    if !bytes.starts_with(&[0xFF, SOI]) {
        return Err(ImageError::invalid("a JPEG must start with SOI"));
    }
    let mut segments = vec![Segment {
        marker: SOI,
        payload: &[],
        payload_at: 2,
        bytes: &bytes[..2],
    }];
    let mut pos = 2;
    loop {
        let start = pos;
        match bytes.get(pos) {
            Some(0xFF) => {}
            Some(_) => {
                return Err(ImageError::invalid(format_args!(
                    "JPEG: expected a marker at byte {pos}"
                )));
            }
            None => return Err(ImageError::invalid("JPEG: ends before its EOI marker")),
        }
        // A marker may be preceded by any number of 0xFF fill bytes.
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            return Err(ImageError::invalid("JPEG: ends before its EOI marker"));
        };
        pos += 1;
        match marker {
            EOI | TEM => {
                segments.push(Segment {
                    marker,
                    payload: &[],
                    payload_at: pos,
                    bytes: &bytes[start..pos],
                });
                if marker == EOI {
                    return Ok(segments);
                }
                continue;
            }
            SOI => {
                return Err(ImageError::invalid(format_args!(
                    "JPEG: a second SOI at byte {start}"
                )));
            }
            0x00 | 0xD0..=0xD7 => {
                return Err(ImageError::invalid(format_args!(
                    "JPEG: marker 0x{marker:02X} outside a scan at byte {start}"
                )));
            }
            _ => {}
        }
        let Some(&[high, low]) = bytes.get(pos..pos + 2) else {
            return Err(ImageError::invalid(format_args!(
                "JPEG: segment 0x{marker:02X} at byte {start} is cut off"
            )));
        };
        let length = usize::from(u16::from_be_bytes([high, low]));
        if length < 2 {
            return Err(ImageError::invalid(format_args!(
                "JPEG: segment 0x{marker:02X} at byte {start} claims a length of {length}"
            )));
        }
        let end = pos + length;
        let Some(payload) = bytes.get(pos + 2..end) else {
            return Err(ImageError::invalid(format_args!(
                "JPEG: segment 0x{marker:02X} at byte {start} runs past the end"
            )));
        };
        pos = end;
        if marker == SOS {
            pos = entropy_coded_end(bytes, pos)?;
        }
        segments.push(Segment {
            marker,
            payload,
            payload_at: end - payload.len(),
            bytes: &bytes[start..pos],
        });
    }
}

/// Where the entropy-coded data that starts at `pos` ends: at the first 0xFF that is neither
/// stuffing (FF00), a restart marker (FFD0–FFD7) nor a fill byte before a marker.
fn entropy_coded_end(bytes: &[u8], mut pos: usize) -> Result<usize, ImageError> {
    loop {
        let Some(found) = bytes
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
        else {
            return Err(ImageError::invalid(
                "JPEG: scan data runs to the end of the file",
            ));
        };
        let ff = pos + found;
        match bytes.get(ff + 1) {
            None => {
                return Err(ImageError::invalid(
                    "JPEG: scan data runs to the end of the file",
                ));
            }
            Some(0x00 | 0xD0..=0xD7) => pos = ff + 2,
            Some(0xFF) => pos = ff + 1,
            Some(_) => return Ok(ff),
        }
    }
}

/// What a segment is, for the decision to keep it.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// JFIF APP0: kept, without its thumbnail.
    Jfif,
    /// Needed to decode or to show the colours right.
    Image,
    /// Anything else: metadata, thumbnails, comments, unknown extensions.
    Drop,
}

fn kind(segment: &Segment<'_>) -> Kind {
    let payload = segment.payload;
    match segment.marker {
        APP0 if payload.starts_with(b"JFIF\0") && payload.len() >= 14 => Kind::Jfif,
        // ICC profiles (colour) and Adobe's transform flag (whether the data is YCbCr).
        APP2 if payload.starts_with(b"ICC_PROFILE\0") => Kind::Image,
        APP14 if payload.starts_with(b"Adobe") => Kind::Image,
        // SOFn (not C4 DHT, C8 JPG or CC DAC), DHT, DAC, SOS, DQT, DNL, DRI, DHP, EXP, EOI.
        0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => Kind::Image,
        0xC4 | 0xCC | SOS | 0xDB..=0xDF | EOI | SOI => Kind::Image,
        // APP1 (EXIF, XMP), APP2 MPF/FPXR, APP13 (IPTC), COM, every other APPn, JFXX
        // thumbnails, JPGn extensions, TEM.
        _ => Kind::Drop,
    }
}

fn is_frame_header(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF)
}

/// See [`super::shareable_copy`]. `orientation` is written back when the photo has one.
pub(super) fn strip(bytes: &[u8], orientation: Option<Orientation>) -> Result<Vec<u8>, ImageError> {
    let segments = segments(bytes)?;
    let first_scan = segments.iter().position(|s| s.marker == SOS);
    let first_frame = segments.iter().position(|s| is_frame_header(s.marker));
    match (first_frame, first_scan) {
        (Some(frame), Some(scan)) if frame < scan => {}
        _ => {
            return Err(ImageError::invalid(
                "JPEG: no frame header before the first scan",
            ));
        }
    }

    let mut out = Vec::with_capacity(bytes.len());
    let mut orientation = orientation;
    for segment in &segments {
        let kind = kind(segment);
        // The orientation goes right after SOI and JFIF, where EXIF readers look for it.
        if kind == Kind::Image
            && segment.marker != SOI
            && let Some(orientation) = orientation.take()
        {
            write_exif_orientation(&mut out, orientation);
        }
        match kind {
            Kind::Drop => {}
            Kind::Image => out.extend_from_slice(segment.bytes),
            Kind::Jfif => write_jfif_without_thumbnail(&mut out, segment.payload),
        }
    }
    Ok(out)
}

/// JFIF's version, density unit and densities, with a 0×0 thumbnail: a JFIF thumbnail is an
/// old copy of the pixels that an editor may not have updated (a crop shows what it cut).
fn write_jfif_without_thumbnail(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&[0xFF, APP0, 0, 16]);
    out.extend_from_slice(&payload[..12]);
    out.extend_from_slice(&[0, 0]);
}

fn write_exif_orientation(out: &mut Vec<u8>, orientation: Orientation) {
    let tiff = tiff::orientation_only(orientation);
    let length = u16::try_from(2 + 6 + tiff.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&[0xFF, APP1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::fixtures::{self, ExifSpec};
    use crate::imaging::{Format, shareable_copy};

    fn markers(jpeg: &[u8]) -> Vec<u8> {
        segments(jpeg)
            .expect("a well-formed JPEG")
            .iter()
            .map(|s| s.marker)
            .collect()
    }

    /// The bytes from the first DQT to EOI: tables, frame, scans.
    fn image_data(jpeg: &[u8]) -> Vec<u8> {
        segments(jpeg)
            .expect("a well-formed JPEG")
            .iter()
            .filter(|s| kind(s) == Kind::Image && s.marker != SOI)
            .flat_map(|s| s.bytes.iter().copied())
            .collect()
    }

    fn decode(jpeg: &[u8]) -> Vec<u8> {
        jpeg_decoder::Decoder::new(jpeg)
            .decode()
            .expect("the copy decodes")
    }

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let length = u16::try_from(payload.len() + 2).expect("a small test segment");
        let mut out = vec![0xFF, marker];
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// `jpeg` with `extra` spliced in after SOI and its JFIF APP0.
    fn with_segments(jpeg: &[u8], extra: &[Vec<u8>]) -> Vec<u8> {
        let mut out = jpeg[..20].to_vec();
        assert_eq!(&out[2..4], &[0xFF, APP0], "the encoder writes JFIF first");
        for segment in extra {
            out.extend_from_slice(segment);
        }
        out.extend_from_slice(&jpeg[20..]);
        out
    }

    #[test]
    fn a_phone_photo_loses_every_metadata_block_but_keeps_pixels_and_orientation() {
        let original = fixtures::jpeg(96, 64, Some(&fixtures::phone_exif()));
        let before = fixtures::summarize(&original);
        assert!(before.has_gps && before.has_serial && before.has_maker_note);
        assert!(before.has_xmp && before.has_comment);

        let copy = shareable_copy(&original, Format::Jpeg).expect("a shareable copy");

        let after = fixtures::summarize(&copy);
        assert_eq!(
            after,
            fixtures::MetadataSummary {
                has_exif: true,
                exif_fields: 1,
                orientation: Some(6),
                ..fixtures::MetadataSummary::default()
            }
        );
        assert_eq!(image_data(&copy), image_data(&original), "not re-encoded");
        assert_eq!(decode(&copy), decode(&original));
        assert!(copy.ends_with(&[0xFF, EOI]), "nothing after EOI");
        assert_eq!(
            markers(&copy)[..3],
            [SOI, APP0, APP1],
            "the orientation right after JFIF"
        );
    }

    #[test]
    fn an_upright_photo_gets_no_exif_at_all() {
        let exif = ExifSpec {
            orientation: Some(1),
            ..fixtures::phone_exif()
        };
        let original = fixtures::jpeg(32, 32, Some(&exif));
        let copy = shareable_copy(&original, Format::Jpeg).expect("a shareable copy");
        assert_eq!(
            fixtures::summarize(&copy),
            fixtures::MetadataSummary::default()
        );
        assert!(!markers(&copy).contains(&APP1));
    }

    #[test]
    fn a_photo_without_metadata_comes_out_the_same() {
        let original = fixtures::jpeg(32, 32, None);
        let copy = shareable_copy(&original, Format::Jpeg).expect("a shareable copy");
        assert_eq!(copy, original);
    }

    #[test]
    fn colour_segments_stay_and_every_other_kind_goes() {
        let original = fixtures::jpeg(32, 32, None);
        let icc = segment(APP2, b"ICC_PROFILE\0\x01\x01fake profile bytes");
        let adobe = segment(APP14, b"Adobe\0\x64\0\0\0\0\x01");
        let dropped = [
            segment(APP1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"),
            segment(APP2, b"MPF\0MM\0*"),
            segment(APP2, b"FPXR\0\0"),
            segment(0xED, b"Photoshop 3.0\08BIM\x04\x04"),
            segment(0xE0, b"JFXX\0\x10thumbnail"),
            segment(0xEF, b"whatever"),
            segment(0xFE, b"a comment"),
            segment(0xF7, b"JPEG-LS"),
        ];
        let mut extra = vec![icc.clone(), adobe.clone()];
        extra.extend(dropped.iter().cloned());
        let spliced = with_segments(&original, &extra);

        let copy = shareable_copy(&spliced, Format::Jpeg).expect("a shareable copy");

        let mut expected = original[..20].to_vec();
        expected.extend_from_slice(&icc);
        expected.extend_from_slice(&adobe);
        expected.extend_from_slice(&original[20..]);
        assert_eq!(copy, expected);
    }

    #[test]
    fn a_jfif_thumbnail_goes_but_jfif_stays() {
        let original = fixtures::jpeg(32, 32, None);
        let mut jfif = original[6..20].to_vec(); // "JFIF\0", version, units, densities, 0, 0
        jfif[12] = 2;
        jfif[13] = 1;
        jfif.extend_from_slice(&[0x55; 6]); // a 2×1 RGB thumbnail
        let mut with_thumbnail = original[..2].to_vec();
        with_thumbnail.extend_from_slice(&segment(APP0, &jfif));
        with_thumbnail.extend_from_slice(&original[20..]);

        let copy = shareable_copy(&with_thumbnail, Format::Jpeg).expect("a shareable copy");
        assert_eq!(copy, original);
    }

    #[test]
    fn stuffing_restart_markers_and_fill_bytes_are_scan_data() {
        let mut encoded = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut encoded, 80);
        encoder.set_restart_interval(1);
        encoder
            .encode(&[0xFF; 64 * 64 * 3], 64, 64, jpeg_encoder::ColorType::Rgb)
            .expect("encodes");
        let scan = segments(&encoded)
            .expect("well-formed")
            .into_iter()
            .find(|s| s.marker == SOS)
            .expect("a scan");
        assert!(
            scan.bytes
                .windows(2)
                .any(|w| w[0] == 0xFF && (0xD0..=0xD7).contains(&w[1])),
            "restart markers inside the scan"
        );
        // Fill bytes before EOI, and a COM between two scans' worth of data.
        let eoi = encoded.len() - 2;
        let mut filled = encoded[..eoi].to_vec();
        filled.extend_from_slice(&segment(0xFE, b"between"));
        filled.extend_from_slice(&[0xFF, 0xFF, 0xFF, EOI]);
        let copy = shareable_copy(&filled, Format::Jpeg).expect("a shareable copy");
        let mut expected = encoded[..eoi].to_vec();
        expected.extend_from_slice(&[0xFF, 0xFF, 0xFF, EOI]);
        assert_eq!(copy, expected);
        assert_eq!(decode(&copy), decode(&encoded));
    }

    #[test]
    fn a_progressive_jpeg_keeps_all_its_scans() {
        let mut encoded = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut encoded, 85);
        encoder.set_progressive(true);
        let pixels: Vec<u8> = (0..48 * 32 * 3).map(|i| (i * 7 % 251) as u8).collect();
        encoder
            .encode(&pixels, 48, 32, jpeg_encoder::ColorType::Rgb)
            .expect("encodes");
        let spliced = with_segments(&encoded, &[segment(0xFE, b"comment")]);
        let copy = shareable_copy(&spliced, Format::Jpeg).expect("a shareable copy");
        assert!(markers(&copy).iter().filter(|&&m| m == SOS).count() > 1);
        assert_eq!(copy, encoded);
    }

    #[test]
    fn hostile_structures_are_invalid() {
        let valid = fixtures::jpeg(32, 32, Some(&fixtures::phone_exif()));
        let plain = fixtures::jpeg(32, 32, None);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("only SOI", vec![0xFF, SOI]),
            ("half", fixtures::truncated(&valid)),
            ("no EOI", plain[..plain.len() - 2].to_vec()),
            ("cut in the scan", plain[..plain.len() - 20].to_vec()),
            ("cut in a length", vec![0xFF, SOI, 0xFF, 0xE1, 0x00]),
            (
                "length 0",
                vec![0xFF, SOI, 0xFF, 0xE1, 0x00, 0x00, 0xFF, EOI],
            ),
            (
                "length 1",
                vec![0xFF, SOI, 0xFF, 0xDB, 0x00, 0x01, 0xFF, EOI],
            ),
            (
                "length past the end",
                vec![0xFF, SOI, 0xFF, 0xE1, 0xFF, 0xFF, 0, 0],
            ),
            (
                "garbage between segments",
                vec![0xFF, SOI, 0x12, 0x34, 0xFF, EOI],
            ),
            ("second SOI", vec![0xFF, SOI, 0xFF, SOI, 0xFF, EOI]),
            ("stray RST", vec![0xFF, SOI, 0xFF, 0xD3, 0xFF, EOI]),
            ("only fill bytes", vec![0xFF, SOI, 0xFF, 0xFF, 0xFF]),
            ("no frame", vec![0xFF, SOI, 0xFF, EOI]),
            (
                "header claiming 60000x60000",
                fixtures::jpeg_header_claiming(60000, 60000),
            ),
        ];
        for (what, bytes) in cases {
            assert!(
                matches!(strip(&bytes, None), Err(ImageError::Invalid(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn mutated_files_never_panic() {
        let valid = fixtures::jpeg(32, 32, Some(&fixtures::phone_exif()));
        let mut copies = 0;
        fixtures::mutations(&valid, 2_000, 0x6a70_6567, |mutated| {
            if let Ok(copy) = strip(mutated, Some(Orientation::Rotate90)) {
                copies += 1;
                let again = strip(&copy, Some(Orientation::Rotate90)).expect("a copy is valid");
                assert_eq!(again, copy, "stripping a copy changes nothing");
            }
        });
        assert!(copies > 0, "most single-byte changes leave a JPEG");
    }
}

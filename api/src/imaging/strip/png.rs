//! PNG: the chunks that make and colour the image, without the ones that describe it.

use super::tiff;
use crate::imaging::ImageError;
use crate::imaging::metadata::Orientation;

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// The PNG specification caps a chunk's length at 2³¹ − 1.
const MAX_CHUNK: usize = 0x7FFF_FFFF;

/// One chunk, as it lies in the file.
#[derive(Debug, Clone, Copy)]
pub(in crate::imaging) struct Chunk<'a> {
    pub kind: [u8; 4],
    /// Length, type, data and CRC.
    pub bytes: &'a [u8],
}

/// The chunks from IHDR to IEND; anything after IEND is not part of the image.
pub(in crate::imaging) fn chunks(bytes: &[u8]) -> Result<Vec<Chunk<'_>>, ImageError> {
    if !bytes.starts_with(SIGNATURE) {
        return Err(ImageError::invalid("PNG: no PNG signature"));
    }
    let mut chunks = Vec::new();
    let mut pos = SIGNATURE.len();
    loop {
        let Some(header) = bytes.get(pos..pos + 8) else {
            return Err(ImageError::invalid("PNG: ends before its IEND chunk"));
        };
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = [header[4], header[5], header[6], header[7]];
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(ImageError::invalid(format_args!(
                "PNG: a chunk type that is not four letters at byte {pos}"
            )));
        }
        let name = String::from_utf8_lossy(&kind).into_owned();
        if length > MAX_CHUNK {
            return Err(ImageError::invalid(format_args!(
                "PNG: chunk {name} at byte {pos} claims {length} bytes"
            )));
        }
        let end = pos + 12 + length;
        let Some(whole) = bytes.get(pos..end) else {
            return Err(ImageError::invalid(format_args!(
                "PNG: chunk {name} at byte {pos} runs past the end"
            )));
        };
        if chunks.is_empty() && (&kind != b"IHDR" || length != 13) {
            return Err(ImageError::invalid("PNG: the first chunk is not IHDR"));
        }
        chunks.push(Chunk { kind, bytes: whole });
        if &kind == b"IEND" {
            return Ok(chunks);
        }
        pos = end;
    }
}

/// Chunks a decoder needs, and those that say how to show the colours. APNG's acTL, fcTL and
/// fdAT go with the rest: an animated PNG is shared as its default image.
const KEPT: [&[u8; 4]; 13] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
    b"cICP", b"bKGD", b"pHYs",
];

/// See [`super::shareable_copy`]. `orientation` is written back when the photo has one.
pub(super) fn strip(bytes: &[u8], orientation: Option<Orientation>) -> Result<Vec<u8>, ImageError> {
    let chunks = chunks(bytes)?;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(SIGNATURE);
    for chunk in &chunks {
        // An ancillary chunk (lower-case first letter) may be dropped; a critical chunk this
        // does not know may change what the pixels mean, so such a file is not a PNG we take.
        let critical = chunk.kind[0].is_ascii_uppercase();
        if KEPT.contains(&&chunk.kind) {
            out.extend_from_slice(chunk.bytes);
        } else if critical {
            return Err(ImageError::invalid(format_args!(
                "PNG: unknown critical chunk {}",
                String::from_utf8_lossy(&chunk.kind)
            )));
        }
        // eXIf must come before the image data; right after IHDR is where readers look.
        if let (b"IHDR", Some(orientation)) = (&chunk.kind, orientation) {
            write_chunk(&mut out, b"eXIf", &tiff::orientation_only(orientation));
        }
    }
    if !chunks.iter().any(|c| &c.kind == b"IDAT") {
        return Err(ImageError::invalid("PNG: no image data"));
    }
    Ok(out)
}

/// Appends a chunk with its CRC (over the type and the data).
pub(in crate::imaging) fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::fixtures::{self, ExifSpec, MetadataSummary};
    use crate::imaging::{Format, shareable_copy};

    fn kinds(png: &[u8]) -> Vec<String> {
        chunks(png)
            .expect("a well-formed PNG")
            .iter()
            .map(|c| String::from_utf8_lossy(&c.kind).into_owned())
            .collect()
    }

    fn decode(png: &[u8]) -> Vec<u8> {
        image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .expect("decodes")
            .into_rgb8()
            .into_raw()
    }

    fn crcs_hold(png: &[u8]) -> bool {
        chunks(png).expect("a well-formed PNG").iter().all(|c| {
            let stored = &c.bytes[c.bytes.len() - 4..];
            let mut crc = crc32fast::Hasher::new();
            crc.update(&c.bytes[4..c.bytes.len() - 4]);
            stored == crc.finalize().to_be_bytes()
        })
    }

    /// `png` with `extra` chunks spliced in after IHDR.
    fn with_chunks(png: &[u8], extra: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let ihdr_end = 8 + 25;
        let mut out = png[..ihdr_end].to_vec();
        for (kind, data) in extra {
            write_chunk(&mut out, kind, data);
        }
        out.extend_from_slice(&png[ihdr_end..]);
        out
    }

    #[test]
    fn a_phone_png_loses_its_metadata_and_keeps_pixels_and_orientation() {
        let original = fixtures::png(40, 30, Some(&fixtures::phone_exif()));
        let before = fixtures::summarize(&original);
        assert!(before.has_gps && before.has_serial && before.has_xmp && before.has_comment);

        let copy = shareable_copy(&original, Format::Png).expect("a shareable copy");

        assert_eq!(
            fixtures::summarize(&copy),
            MetadataSummary {
                has_exif: true,
                exif_fields: 1,
                orientation: Some(6),
                ..MetadataSummary::default()
            }
        );
        assert_eq!(kinds(&copy)[..2], ["IHDR", "eXIf"]);
        assert!(crcs_hold(&copy));
        assert_eq!(decode(&copy), decode(&original));
    }

    #[test]
    fn colour_chunks_stay_and_text_time_and_unknown_ancillary_chunks_go() {
        let original = fixtures::png(8, 8, None);
        let spliced = with_chunks(
            &original,
            &[
                (b"gAMA", &45455u32.to_be_bytes()),
                (b"sRGB", &[0]),
                (b"pHYs", &[0, 0, 11, 19, 0, 0, 11, 19, 1]),
                (b"tEXt", b"Comment\0at home"),
                (b"zTXt", b"Location\0\0x"),
                (b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>"),
                (b"tIME", &[7, 234, 7, 4, 21, 15, 9]),
                (b"eXIf", &fixtures::exif_block(&ExifSpec::default())),
                (b"prVt", b"private"),
            ],
        );
        let copy = shareable_copy(&spliced, Format::Png).expect("a shareable copy");
        assert_eq!(
            kinds(&copy),
            ["IHDR", "gAMA", "sRGB", "pHYs", "IDAT", "IEND"]
        );
        assert_eq!(decode(&copy), decode(&original));
    }

    #[test]
    fn a_png_without_metadata_comes_out_the_same_and_trailing_bytes_go() {
        let original = fixtures::png(8, 8, None);
        let mut trailing = original.clone();
        trailing.extend_from_slice(b"appended data with a secret");
        let copy = shareable_copy(&trailing, Format::Png).expect("a shareable copy");
        assert_eq!(copy, original);
    }

    #[test]
    fn hostile_structures_are_invalid() {
        let valid = fixtures::png(16, 16, Some(&fixtures::phone_exif()));
        let mut huge = valid.clone();
        huge[33..37].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        let mut past_end = valid.clone();
        past_end[33..37].copy_from_slice(&0x0100_0000u32.to_be_bytes());
        let mut bad_type = valid.clone();
        bad_type[37] = b'1';
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("only the signature", SIGNATURE.to_vec()),
            ("half", fixtures::truncated(&valid)),
            ("no IEND", valid[..valid.len() - 12].to_vec()),
            ("a length over 2^31", huge),
            ("a length past the end", past_end),
            ("a chunk type with a digit", bad_type),
            ("IDAT first", {
                let mut idat_first = SIGNATURE.to_vec();
                write_chunk(&mut idat_first, b"IDAT", b"x");
                write_chunk(&mut idat_first, b"IEND", b"");
                idat_first
            }),
            (
                "unknown critical chunk",
                with_chunks(&valid, &[(b"ABCD", b"")]),
            ),
        ];
        for (what, bytes) in cases {
            assert!(
                matches!(strip(&bytes, None), Err(ImageError::Invalid(_))),
                "{what}"
            );
        }
        let mut no_idat = valid[..33].to_vec();
        write_chunk(&mut no_idat, b"IEND", b"");
        assert!(matches!(strip(&no_idat, None), Err(ImageError::Invalid(_))));
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_still_a_well_formed_container() {
        // Rejecting it by size is the decoder's job (`Limits`); the container is sound.
        let bomb = fixtures::png_header_claiming(60_000, 60_000);
        let copy = strip(&bomb, None).expect("well-formed chunks");
        assert_eq!(copy, bomb);
    }

    #[test]
    fn mutated_files_never_panic() {
        let valid = fixtures::png(16, 16, Some(&fixtures::phone_exif()));
        let mut copies = 0;
        fixtures::mutations(&valid, 2_000, 0x706e_6721, |mutated| {
            if let Ok(copy) = strip(mutated, Some(Orientation::Rotate90)) {
                copies += 1;
                let again = strip(&copy, Some(Orientation::Rotate90)).expect("a copy is valid");
                assert_eq!(again, copy, "stripping a copy changes nothing");
            }
        });
        assert!(copies > 0);
    }
}

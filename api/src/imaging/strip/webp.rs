//! WebP: the RIFF chunks of the image, without EXIF and XMP, with the VP8X flags to match.

use super::tiff;
use crate::imaging::ImageError;
use crate::imaging::metadata::Orientation;

/// VP8X flag bits (the first byte of its payload).
const FLAG_EXIF: u8 = 0x08;
const FLAG_XMP: u8 = 0x04;
const FLAG_ALPHA: u8 = 0x10;

/// One RIFF chunk of a WebP.
#[derive(Debug, Clone, Copy)]
pub(in crate::imaging) struct Chunk<'a> {
    pub kind: [u8; 4],
    pub data: &'a [u8],
}

/// The chunks inside the RIFF container; bytes after the size RIFF declares are not the image.
pub(in crate::imaging) fn chunks(bytes: &[u8]) -> Result<Vec<Chunk<'_>>, ImageError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err(ImageError::invalid("WebP: no RIFF WEBP header"));
    }
    let riff_size = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let Some(body) = bytes.get(12..8 + riff_size.max(4)) else {
        return Err(ImageError::invalid(format_args!(
            "WebP: RIFF claims {riff_size} bytes but the file has {}",
            bytes.len() - 8
        )));
    };
    let mut chunks = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let Some(header) = body.get(pos..pos + 8) else {
            return Err(ImageError::invalid(format_args!(
                "WebP: chunk header at byte {} is cut off",
                12 + pos
            )));
        };
        let kind = [header[0], header[1], header[2], header[3]];
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let Some(data) = body.get(pos + 8..pos + 8 + size) else {
            return Err(ImageError::invalid(format_args!(
                "WebP: chunk {} at byte {} runs past the end of the RIFF",
                String::from_utf8_lossy(&kind),
                12 + pos
            )));
        };
        chunks.push(Chunk { kind, data });
        // Chunks are padded to an even size; a missing pad after the last one is tolerated.
        pos += 8 + size + (size & 1);
    }
    Ok(chunks)
}

/// The canvas an image chunk (`VP8 ` or `VP8L`) declares: width, height, and whether it has
/// alpha. None when the chunk is no image or its header is cut off.
pub(in crate::imaging) fn canvas_of(kind: &[u8; 4], data: &[u8]) -> Option<(u32, u32, bool)> {
    match kind {
        b"VP8L" => {
            let [0x2F, a, b, c, d, ..] = *data else {
                return None;
            };
            let bits = u32::from_le_bytes([a, b, c, d]);
            Some((
                (bits & 0x3FFF) + 1,
                ((bits >> 14) & 0x3FFF) + 1,
                bits >> 28 & 1 == 1,
            ))
        }
        b"VP8 " => {
            let [_, _, _, 0x9D, 0x01, 0x2A, w0, w1, h0, h1, ..] = *data else {
                return None;
            };
            let width = u32::from(u16::from_le_bytes([w0, w1]) & 0x3FFF);
            let height = u32::from(u16::from_le_bytes([h0, h1]) & 0x3FFF);
            Some((width, height, false))
        }
        _ => None,
    }
}

/// A VP8X payload: flags and the canvas size (each minus one, 24 bits little-endian).
pub(in crate::imaging) fn vp8x(flags: u8, width: u32, height: u32) -> [u8; 10] {
    let w = width.saturating_sub(1).to_le_bytes();
    let h = height.saturating_sub(1).to_le_bytes();
    [flags, 0, 0, 0, w[0], w[1], w[2], h[0], h[1], h[2]]
}

/// Chunks that make the image or colour it; EXIF, XMP and anything unknown go.
const KEPT: [&[u8; 4]; 7] = [
    b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF", b"ICCP",
];

/// See [`super::shareable_copy`]. `orientation` is written back when the photo has one.
pub(super) fn strip(bytes: &[u8], orientation: Option<Orientation>) -> Result<Vec<u8>, ImageError> {
    let chunks = chunks(bytes)?;
    if !chunks
        .iter()
        .any(|c| matches!(&c.kind, b"VP8 " | b"VP8L" | b"ANMF"))
    {
        return Err(ImageError::invalid("WebP: no image data"));
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    let exif = orientation.map(tiff::orientation_only);
    let has_vp8x = chunks.iter().any(|c| &c.kind == b"VP8X");
    if !has_vp8x && exif.is_some() {
        // A simple-format file (VP8 or VP8L alone) can carry EXIF only once it has a VP8X.
        let (width, height, alpha) = chunks
            .iter()
            .find_map(|c| canvas_of(&c.kind, c.data))
            .ok_or_else(|| ImageError::invalid("WebP: an image chunk without a header"))?;
        let flags = FLAG_EXIF | if alpha { FLAG_ALPHA } else { 0 };
        write_chunk(&mut out, b"VP8X", &vp8x(flags, width, height));
    }
    for chunk in chunks.iter().filter(|c| KEPT.contains(&&c.kind)) {
        if &chunk.kind == b"VP8X" {
            let Some((&flags, rest)) = chunk.data.split_first() else {
                return Err(ImageError::invalid("WebP: an empty VP8X chunk"));
            };
            let mut flags = flags & !(FLAG_EXIF | FLAG_XMP);
            if exif.is_some() {
                flags |= FLAG_EXIF;
            }
            let mut data = Vec::with_capacity(chunk.data.len());
            data.push(flags);
            data.extend_from_slice(rest);
            write_chunk(&mut out, b"VP8X", &data);
        } else {
            write_chunk(&mut out, &chunk.kind, chunk.data);
        }
    }
    // EXIF follows the image data in a WebP.
    if let Some(exif) = exif {
        write_chunk(&mut out, b"EXIF", &exif);
    }
    set_riff_size(&mut out)?;
    Ok(out)
}

/// Appends a chunk, padded to an even size.
pub(in crate::imaging) fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(kind);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

/// Writes the RIFF size of a file built in `out`.
pub(in crate::imaging) fn set_riff_size(out: &mut [u8]) -> Result<(), ImageError> {
    let size = u32::try_from(out.len() - 8)
        .map_err(|_| ImageError::invalid("WebP: larger than RIFF can hold"))?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::fixtures::{self, MetadataSummary};
    use crate::imaging::{Format, shareable_copy};

    fn kinds(webp: &[u8]) -> Vec<String> {
        chunks(webp)
            .expect("a well-formed WebP")
            .iter()
            .map(|c| String::from_utf8_lossy(&c.kind).into_owned())
            .collect()
    }

    fn decode(webp: &[u8]) -> Vec<u8> {
        image::load_from_memory_with_format(webp, image::ImageFormat::WebP)
            .expect("decodes")
            .into_rgba8()
            .into_raw()
    }

    fn image_chunk(webp: &[u8]) -> Vec<u8> {
        chunks(webp)
            .expect("a well-formed WebP")
            .iter()
            .find(|c| &c.kind == b"VP8L")
            .expect("a VP8L chunk")
            .data
            .to_vec()
    }

    #[test]
    fn a_phone_webp_loses_exif_and_xmp_and_keeps_pixels_and_orientation() {
        let original = fixtures::webp(30, 20, Some(&fixtures::phone_exif()));
        let before = fixtures::summarize(&original);
        assert!(before.has_gps && before.has_serial && before.has_xmp);
        assert_eq!(kinds(&original), ["VP8X", "VP8L", "EXIF", "XMP "]);

        let copy = shareable_copy(&original, Format::Webp).expect("a shareable copy");

        assert_eq!(
            fixtures::summarize(&copy),
            MetadataSummary {
                has_exif: true,
                exif_fields: 1,
                orientation: Some(6),
                ..MetadataSummary::default()
            }
        );
        assert_eq!(kinds(&copy), ["VP8X", "VP8L", "EXIF"]);
        let vp8x = &chunks(&copy).expect("well-formed")[0];
        assert_eq!(vp8x.data[0], FLAG_EXIF, "the XMP flag cleared, EXIF set");
        assert_eq!(image_chunk(&copy), image_chunk(&original), "not re-encoded");
        assert_eq!(decode(&copy), decode(&original));
        assert_eq!(
            u32::from_le_bytes([copy[4], copy[5], copy[6], copy[7]]) as usize,
            copy.len() - 8
        );
    }

    #[test]
    fn an_upright_webp_loses_its_vp8x_flags_and_its_exif() {
        let exif = fixtures::ExifSpec {
            orientation: None,
            ..fixtures::phone_exif()
        };
        let original = fixtures::webp(8, 8, Some(&exif));
        let copy = shareable_copy(&original, Format::Webp).expect("a shareable copy");
        assert_eq!(kinds(&copy), ["VP8X", "VP8L"]);
        assert_eq!(chunks(&copy).expect("well-formed")[0].data[0], 0);
        assert_eq!(fixtures::summarize(&copy), MetadataSummary::default());
        assert_eq!(decode(&copy), decode(&original));
    }

    #[test]
    fn a_simple_webp_gains_a_vp8x_only_to_carry_an_orientation() {
        let simple = fixtures::webp(12, 7, None);
        assert_eq!(kinds(&simple), ["VP8L"]);
        let copy = shareable_copy(&simple, Format::Webp).expect("a shareable copy");
        assert_eq!(copy, simple);

        let turned = strip(&simple, Some(Orientation::Rotate180)).expect("a copy");
        assert_eq!(kinds(&turned), ["VP8X", "VP8L", "EXIF"]);
        assert_eq!(
            chunks(&turned).expect("well-formed")[0].data,
            vp8x(FLAG_EXIF, 12, 7)
        );
        assert_eq!(fixtures::summarize(&turned).orientation, Some(3));
        assert_eq!(decode(&turned), decode(&simple));
    }

    #[test]
    fn the_canvas_is_read_from_lossy_and_lossless_headers() {
        let lossless = fixtures::webp(300, 17, None);
        let chunk = &chunks(&lossless).expect("well-formed")[0];
        assert_eq!(canvas_of(&chunk.kind, chunk.data), Some((300, 17, false)));
        // A VP8 key frame: frame tag, start code, 14-bit width and height.
        let lossy = [0x30, 0x01, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00];
        assert_eq!(canvas_of(b"VP8 ", &lossy), Some((320, 240, false)));
        assert_eq!(canvas_of(b"VP8 ", &lossy[..9]), None);
        assert_eq!(canvas_of(b"ALPH", &lossy), None);
    }

    #[test]
    fn hostile_structures_are_invalid() {
        let valid = fixtures::webp(8, 8, Some(&fixtures::phone_exif()));
        let mut riff_too_big = valid.clone();
        riff_too_big[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut chunk_too_big = valid.clone();
        chunk_too_big[16..20].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        let mut empty_vp8x = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0".to_vec();
        write_chunk(&mut empty_vp8x, b"VP8L", &image_chunk(&valid));
        set_riff_size(&mut empty_vp8x).expect("small");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("header only", b"RIFF\x04\0\0\0WEBP".to_vec()),
            ("half", fixtures::truncated(&valid)),
            ("RIFF size past the end", riff_too_big),
            ("chunk size past the end", chunk_too_big),
            ("a cut chunk header", b"RIFF\x08\0\0\0WEBPVP8L".to_vec()),
            ("an empty VP8X", empty_vp8x),
            ("no image chunk", b"RIFF\x0c\0\0\0WEBPICCP\0\0\0\0".to_vec()),
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
        let valid = fixtures::webp(16, 16, Some(&fixtures::phone_exif()));
        let mut copies = 0;
        fixtures::mutations(&valid, 2_000, 0x7765_6270, |mutated| {
            if let Ok(copy) = strip(mutated, Some(Orientation::Rotate90)) {
                copies += 1;
                let again = strip(&copy, Some(Orientation::Rotate90)).expect("a copy is valid");
                assert_eq!(again, copy, "stripping a copy changes nothing");
            }
        });
        assert!(copies > 0);
    }
}

//! Image work for photos, all of it synchronous and CPU-bound (the processing workers run it
//! on a bounded blocking pool): what a file is ([`Format::sniff`]), what its metadata says
//! ([`metadata`]), a copy safe to hand to other members ([`strip`]), and the derivatives
//! phones show ([`pixels`]). Nothing here touches the network, the database or the runtime.
//!
//! Every input is hostile: a file is checked against its declared type, its header against the
//! [`Limits`] before any pixel is decoded, and each stage against the job's deadline.

pub mod metadata;
pub mod pixels;
pub mod strip;

#[cfg(feature = "heif")]
mod heif;

/// A real HEIC made with libheif's encoder, for the end-to-end tests.
#[cfg(all(feature = "heif", feature = "fixtures"))]
pub use heif::encode_fixture as heif_fixture;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

use std::time::Instant;

use chrono::{DateTime, FixedOffset};

/// The photo formats Photon accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    /// HEIC and HEIF (an iPhone's default). Decoded only in builds with the `heif` feature.
    Heif,
}

impl Format {
    /// The format a declared media type names (lower case, as stored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type {
            "image/jpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/webp" => Some(Self::Webp),
            "image/heic" | "image/heif" => Some(Self::Heif),
            _ => None,
        }
    }

    /// What the bytes actually are, from their signature.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(Self::Jpeg);
        }
        if bytes.starts_with(PNG) {
            return Some(Self::Png);
        }
        if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            return Some(Self::Webp);
        }
        // ISO BMFF: a `ftyp` box first, whose major or compatible brands name HEIF.
        if bytes.len() >= 16 && &bytes[4..8] == b"ftyp" {
            let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            let end = size.clamp(16, bytes.len());
            let brands = std::iter::once(&bytes[8..12]).chain(
                bytes
                    .get(16..end)
                    .unwrap_or_default()
                    .chunks_exact(4)
                    .collect::<Vec<_>>(),
            );
            const HEIF_BRANDS: [&[u8]; 8] = [
                b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
            ];
            if brands.into_iter().any(|b| HEIF_BRANDS.contains(&b)) {
                return Some(Self::Heif);
            }
        }
        None
    }
}

/// What one job may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most pixels (width × height, as the header says) a photo may have.
    pub max_pixels: u64,
    /// When the job must give up.
    pub deadline: Instant,
}

impl Limits {
    /// Fails with [`ImageError::TimedOut`] once the deadline has passed; called between stages.
    pub fn check_deadline(&self) -> Result<(), ImageError> {
        if Instant::now() >= self.deadline {
            Err(ImageError::TimedOut)
        } else {
            Ok(())
        }
    }
}

/// Why a photo could not be processed. None of these is worth retrying: the same bytes give
/// the same answer (the worker retries only storage and database failures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// A format this build cannot decode (HEIC without the `heif` feature).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Not a well-formed image of its declared type, or beyond the limits.
    #[error("invalid image: {0}")]
    Invalid(String),
    /// The job's deadline passed.
    #[error("took longer than the time limit")]
    TimedOut,
}

impl ImageError {
    pub fn invalid(reason: impl std::fmt::Display) -> Self {
        Self::Invalid(reason.to_string())
    }
}

/// An encoded derivative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// The media type of every derivative.
pub const DERIVATIVE_CONTENT_TYPE: &str = "image/jpeg";
/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 384;
/// Longest side of a preview, in pixels.
pub const PREVIEW_SIDE: u32 = 1600;

/// Everything the worker stores for a photo that decoded.
#[derive(Debug, Clone)]
pub struct Derived {
    /// Size as displayed: orientation applied.
    pub width: u32,
    pub height: u32,
    /// EXIF `DateTimeOriginal` with `OffsetTimeOriginal` (UTC when the file gives no offset).
    pub taken_at: Option<DateTime<FixedOffset>>,
    /// Base64 ThumbHash.
    pub thumbhash: String,
    pub thumbnail: Encoded,
    pub preview: Encoded,
}

/// Checks that `bytes` are what was declared, then makes the derivatives.
pub fn derive(bytes: &[u8], declared: Format, limits: &Limits) -> Result<Derived, ImageError> {
    check_format(bytes, declared)?;
    let meta = metadata::read(bytes, declared);
    limits.check_deadline()?;
    let rendered = pixels::render(bytes, declared, meta.orientation, limits)?;
    Ok(Derived {
        width: rendered.width,
        height: rendered.height,
        taken_at: meta.taken_at,
        thumbhash: rendered.thumbhash,
        thumbnail: rendered.thumbnail,
        preview: rendered.preview,
    })
}

/// The full-size copy other members get: the same pixels, not re-encoded, with location,
/// serial numbers, maker notes and every other metadata block removed (orientation kept).
pub fn shareable_copy(bytes: &[u8], declared: Format) -> Result<Vec<u8>, ImageError> {
    check_format(bytes, declared)?;
    strip::shareable_copy(bytes, declared)
}

/// Bytes that are not what their uploader declared are not trusted with any decoder.
fn check_format(bytes: &[u8], declared: Format) -> Result<(), ImageError> {
    match Format::sniff(bytes) {
        Some(found) if found == declared => Ok(()),
        Some(found) => Err(ImageError::Invalid(format!(
            "declared {declared:?} but the bytes are {found:?}"
        ))),
        None => Err(ImageError::Invalid(format!(
            "declared {declared:?} but the bytes are no known image format"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_reads_signatures_not_names() {
        assert_eq!(Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(Format::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(
            Format::sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"),
            Some(Format::Heif)
        );
        assert_eq!(
            Format::sniff(b"\0\0\0\x18ftypisom\0\0\0\0mp41avc1"),
            None,
            "an MP4 is not a photo"
        );
        assert_eq!(Format::sniff(b"GIF89a"), None);
        assert_eq!(Format::sniff(b""), None);
    }

    #[test]
    fn bytes_of_another_type_than_declared_are_refused() {
        let png = b"\x89PNG\r\n\x1a\n....";
        assert!(matches!(
            check_format(png, Format::Jpeg),
            Err(ImageError::Invalid(_))
        ));
        assert!(check_format(png, Format::Png).is_ok());
    }
}

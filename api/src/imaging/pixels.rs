//! Decoding, resizing and encoding: the derivatives.
//!
//! One job's stages, each followed by a deadline check: the header's size against the limits
//! (before any pixel buffer exists), a decode at the smallest scale the format allows, the
//! preview resized from that, converted to sRGB, the thumbnail resized from the preview, both
//! turned upright, encoded, and a ThumbHash of the thumbnail. The decoded image is dropped as
//! soon as the preview exists, so a job holds one large buffer at a time.

mod colour;
mod decode;
mod encode;
mod orient;
mod resize;
mod thumbhash;

use std::panic::{AssertUnwindSafe, catch_unwind};

use fast_image_resize::Resizer;

use super::metadata::Orientation;
use super::{Encoded, Format, ImageError, Limits, PREVIEW_SIDE, THUMBNAIL_SIDE};

/// JPEG quality of the preview: the photo as a phone shows it full screen.
const PREVIEW_QUALITY: u8 = 80;
/// JPEG quality of the thumbnail, shown small in the album grid, where artefacts hide.
const THUMBNAIL_QUALITY: u8 = 75;
/// The longest side a JPEG, PNG or WebP header may declare (JPEG's own ceiling).
const MAX_SIDE: u64 = 65_535;

/// What [`render`] makes.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Size as displayed: orientation applied.
    pub width: u32,
    pub height: u32,
    pub thumbhash: String,
    pub thumbnail: Encoded,
    pub preview: Encoded,
}

/// Decodes (at reduced scale where the format allows), turns the image upright, converts it to
/// sRGB and makes the thumbnail, the preview and the ThumbHash.
///
/// `orientation` is the EXIF orientation; HEIF carries its own rotation and mirroring, which
/// libheif applies, so it is ignored for [`Format::Heif`].
pub fn render(
    bytes: &[u8],
    format: Format,
    orientation: Orientation,
    limits: &Limits,
) -> Result<Rendered, ImageError> {
    // The decoders are third-party code fed hostile bytes; one that panics on a file it should
    // have refused fails that photo, not the worker.
    catch_unwind(AssertUnwindSafe(|| {
        render_checked(bytes, format, orientation, limits)
    }))
    .unwrap_or_else(|_| {
        Err(ImageError::Invalid(format!(
            "the {format:?} decoder failed on this file"
        )))
    })
}

fn render_checked(
    bytes: &[u8],
    format: Format,
    orientation: Orientation,
    limits: &Limits,
) -> Result<Rendered, ImageError> {
    let (decoded, orientation) = match format {
        Format::Heif => (decode_heif(bytes, limits)?, Orientation::Normal),
        _ => (decode::decode(bytes, format, limits)?, orientation),
    };
    limits.check_deadline()?;
    let Decoded {
        width: full_width,
        height: full_height,
        raster,
        profile,
    } = decoded;
    let (width, height) = orient::displayed_size(full_width, full_height, orientation);

    let mut resizer = Resizer::new();
    // The preview's size comes from the full image, so its aspect is the photo's even when the
    // decoder rounded a reduced-scale size.
    let (preview_width, preview_height) = resize::fit(full_width, full_height, PREVIEW_SIDE);
    let mut preview = resize::shrink(&mut resizer, raster, preview_width, preview_height)?;
    limits.check_deadline()?;
    // Converting the preview rather than the decoded image touches a fraction of the pixels;
    // resizing before or after the conversion differs by less than a rounding step.
    colour::to_srgb(&mut preview, profile.as_ref());
    drop(profile);
    let (thumbnail_width, thumbnail_height) =
        resize::fit(preview.width, preview.height, THUMBNAIL_SIDE);
    let thumbnail = resize::shrunk(&mut resizer, &preview, thumbnail_width, thumbnail_height)?;
    limits.check_deadline()?;

    // Turning the small images is cheaper than turning the decoded one; each upright copy is
    // dropped as soon as it is encoded.
    let preview = {
        let upright = orient::apply(preview, orientation);
        encode::jpeg(&upright, PREVIEW_QUALITY)?
    };
    limits.check_deadline()?;
    let (thumbnail, thumbhash) = {
        let upright = orient::apply(thumbnail, orientation);
        (
            encode::jpeg(&upright, THUMBNAIL_QUALITY)?,
            thumbhash::encode(&mut resizer, &upright)?,
        )
    };
    Ok(Rendered {
        width,
        height,
        thumbhash,
        thumbnail,
        preview,
    })
}

#[cfg(feature = "heif")]
fn decode_heif(bytes: &[u8], limits: &Limits) -> Result<Decoded, ImageError> {
    super::heif::decode(bytes, limits)
}

#[cfg(not(feature = "heif"))]
fn decode_heif(_bytes: &[u8], _limits: &Limits) -> Result<Decoded, ImageError> {
    Err(ImageError::Unsupported(
        "HEIC needs a build with the heif feature".to_owned(),
    ))
}

/// How the samples of a [`Raster`] are laid out: 8 bits each, no alpha (transparency is
/// flattened onto white at decode, since the derivatives are JPEG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    Gray,
    Rgb,
}

impl Layout {
    pub(super) fn channels(self) -> usize {
        match self {
            Self::Gray => 1,
            Self::Rgb => 3,
        }
    }
}

/// Pixels in packed rows, top row first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Raster {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) layout: Layout,
    pub(super) data: Vec<u8>,
}

impl Raster {
    /// Wraps decoded samples, checking that there are as many as the size says.
    pub(super) fn new(
        width: u32,
        height: u32,
        layout: Layout,
        data: Vec<u8>,
    ) -> Result<Self, ImageError> {
        let expected = width as usize * height as usize * layout.channels();
        if data.len() != expected {
            return Err(ImageError::Invalid(format!(
                "the decoder gave {} bytes for {width}×{height} pixels, not {expected}",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            layout,
            data,
        })
    }
}

/// The colour space a file declares for its pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Profile {
    /// An embedded ICC profile.
    Icc(Vec<u8>),
    /// Coding-independent code points (ITU-T H.273), as HEIF's `nclx` gives them.
    #[cfg_attr(not(feature = "heif"), allow(dead_code))]
    Cicp { primaries: u8, transfer: u8 },
}

/// A decoded image, possibly at reduced scale, with what the file says of its colours.
#[derive(Debug)]
pub(super) struct Decoded {
    /// The full image's size as stored, whatever scale `raster` was decoded at.
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) raster: Raster,
    pub(super) profile: Option<Profile>,
}

/// Refuses a size before anything of that size is allocated.
pub(super) fn check_dimensions(width: u64, height: u64, limits: &Limits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Invalid(format!(
            "the header declares {width}×{height} pixels"
        )));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImageError::Invalid(format!(
            "the header declares {width}×{height} pixels, a side over {MAX_SIDE}"
        )));
    }
    let pixels = width * height;
    if pixels > limits.max_pixels {
        return Err(ImageError::Invalid(format!(
            "the header declares {width}×{height} = {pixels} pixels, over the limit of {}",
            limits.max_pixels
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

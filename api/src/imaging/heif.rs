//! HEIC/HEIF decoding through libheif (the `heif` feature).
//!
//! libheif-rs 0.20 is the newest wrapper that builds against the libheif 1.15 Debian bookworm
//! ships (1.x needs libheif 1.17). Its `decode` frees the decoding options it is given before
//! libheif reads them, so none are passed: libheif's defaults apply the file's rotation and
//! mirroring, and a deeper-than-8-bit image is asked for as 16-bit samples and narrowed here.

use libheif_rs::{
    ColorPrimaries, ColorSpace, HeifContext, ImageHandle, LibHeif, RgbChroma,
    TransferCharacteristics,
};

use super::pixels::{Decoded, Layout, Profile, Raster, check_dimensions};
use super::{ImageError, Limits};

/// Decodes the primary image, upright, as RGB.
pub(super) fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded, ImageError> {
    let unreadable =
        |e: libheif_rs::HeifError| ImageError::Invalid(format!("unreadable HEIF: {e}"));
    let mut context = HeifContext::read_from_bytes(bytes).map_err(unreadable)?;
    // One job per core already; libheif's own threads would only contend with the others.
    context.set_max_decoding_threads(1);
    let handle = context.primary_image_handle().map_err(unreadable)?;
    // The size as shown (rotation applied) and as coded: libheif allocates the latter.
    check_dimensions(handle.width().into(), handle.height().into(), limits)?;
    let coded = |side: i32| u64::try_from(side).unwrap_or(0);
    if handle.ispe_width() > 0 || handle.ispe_height() > 0 {
        check_dimensions(
            coded(handle.ispe_width()),
            coded(handle.ispe_height()),
            limits,
        )?;
    }
    let profile = profile(&handle);
    let deep = handle.luma_bits_per_pixel() > 8;
    let chroma = if deep {
        RgbChroma::HdrRgbLe
    } else {
        RgbChroma::Rgb
    };
    let image = LibHeif::new()
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(unreadable)?;
    let planes = image.planes();
    let plane = planes
        .interleaved
        .ok_or_else(|| ImageError::invalid("unreadable HEIF: libheif gave no RGB plane"))?;
    let (width, height) = (plane.width, plane.height);
    check_dimensions(width.into(), height.into(), limits)?;
    let sample_bytes = if deep { 2 } else { 1 };
    let row = width as usize * 3 * sample_bytes;
    if plane.stride < row || plane.data.len() < plane.stride * height as usize {
        return Err(ImageError::invalid(
            "unreadable HEIF: libheif's plane is smaller than its size",
        ));
    }
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    for line in plane.data.chunks(plane.stride).take(height as usize) {
        let line = &line[..row];
        if deep {
            let shift = plane.bits_per_pixel.saturating_sub(8).min(8);
            data.extend(
                line.chunks_exact(2)
                    .map(|s| (u16::from_le_bytes([s[0], s[1]]) >> shift).min(255) as u8),
            );
        } else {
            data.extend_from_slice(line);
        }
    }
    Ok(Decoded {
        width,
        height,
        raster: Raster::new(width, height, Layout::Rgb, data)?,
        profile,
    })
}

/// The ICC profile if there is one (an iPhone writes Display P3), else the `nclx` code points.
fn profile(handle: &ImageHandle) -> Option<Profile> {
    if let Some(icc) = handle
        .color_profile_raw()
        .filter(|raw| !raw.data.is_empty())
    {
        return Some(Profile::Icc(icc.data));
    }
    let nclx = handle.color_profile_nclx()?;
    let primaries = nclx.color_primaries();
    let transfer = nclx.transfer_characteristics();
    if primaries == ColorPrimaries::Unspecified || transfer == TransferCharacteristics::Unspecified
    {
        return None;
    }
    Some(Profile::Cicp {
        primaries: primaries as u8,
        transfer: transfer as u8,
    })
}

/// A real HEIC of `width`×`height` (a colour gradient with a mark in one corner), encoded by
/// libheif's x265 encoder, with `exif` (a TIFF-headed EXIF payload) attached to the image.
#[cfg(any(test, feature = "fixtures"))]
pub fn encode_fixture(width: u32, height: u32, exif: Option<&[u8]>) -> Vec<u8> {
    use libheif_rs::{Channel, CompressionFormat, EncoderQuality, Image};

    let lib = LibHeif::new();
    let mut image = Image::new(width, height, ColorSpace::Rgb(RgbChroma::Rgb))
        .expect("libheif makes an RGB image");
    image
        .create_plane(Channel::Interleaved, width, height, 8)
        .expect("libheif adds an interleaved plane");
    let planes = image.planes_mut();
    let plane = planes.interleaved.expect("the plane just added");
    for (y, line) in plane.data.chunks_mut(plane.stride).enumerate() {
        for (x, pixel) in line.chunks_exact_mut(3).take(width as usize).enumerate() {
            let corner = x < width as usize / 4 && y < height as usize / 4;
            let r = (x * 255 / width.max(1) as usize) as u8;
            let g = (y * 255 / height.max(1) as usize) as u8;
            pixel.copy_from_slice(&if corner { [255, 0, 0] } else { [r, g, 128] });
        }
    }
    let mut encoder = lib
        .encoder_for_format(CompressionFormat::Hevc)
        .expect("libheif has an HEVC encoder (x265)");
    encoder
        .set_quality(EncoderQuality::Lossy(90))
        .expect("x265 takes a quality");
    let mut context = HeifContext::new().expect("libheif makes a context");
    let handle = context
        .encode_image(&image, &mut encoder, None)
        .expect("x265 encodes the image");
    if let Some(exif) = exif {
        context
            .add_exif_metadata(&handle, exif)
            .expect("libheif attaches the EXIF");
    }
    context.write_to_bytes().expect("libheif writes the file")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_carries_its_exif_for_the_metadata_reader() {
        let exif = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0";
        let heic = encode_fixture(64, 48, Some(exif));
        let context = HeifContext::read_from_bytes(&heic).expect("the fixture reads");
        let handle = context.primary_image_handle().expect("a primary image");
        assert_eq!((handle.width(), handle.height()), (64, 48));
        let mut ids = [0; 2];
        assert_eq!(handle.metadata_block_ids(&mut ids, b"Exif"), 1);
        let block = handle.metadata(ids[0]).expect("the EXIF block reads");
        // libheif stores the payload behind a 4-byte offset to its TIFF header.
        assert_eq!(&block[4..], exif);

        let plain = encode_fixture(64, 48, None);
        let context = HeifContext::read_from_bytes(&plain).expect("the fixture reads");
        let handle = context.primary_image_handle().expect("a primary image");
        assert_eq!(handle.number_of_metadata_blocks(b"Exif"), 0);
    }
}

//! JPEG, PNG and WebP into a [`Raster`]: the header's size checked first, JPEG at reduced scale.

use std::io::Cursor;

use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::{ColorType, ImageDecoder};
use jpeg_decoder::PixelFormat;

use super::{Decoded, Layout, Profile, Raster, check_dimensions};
use crate::imaging::{Format, ImageError, Limits, PREVIEW_SIDE};

/// What a decoder may allocate besides the pixels (metadata chunks, an ICC profile, row
/// buffers): enough for any real file, far from what a lying length field asks for.
const DECODER_ALLOC: u64 = 64 << 20;

/// Decodes a JPEG, PNG or WebP; HEIF has its own decoder.
pub(super) fn decode(bytes: &[u8], format: Format, limits: &Limits) -> Result<Decoded, ImageError> {
    match format {
        Format::Jpeg => jpeg(bytes, limits),
        Format::Png => png(bytes, limits),
        Format::Webp => webp(bytes, limits),
        Format::Heif => Err(ImageError::Unsupported(
            "HEIF is not decoded here".to_owned(),
        )),
    }
}

/// jpeg-decoder rather than zune-jpeg: it decodes at 1/2, 1/4 or 1/8 scale in the DCT (a
/// 12 MP photo's preview needs a quarter of the pixels), reports a truncated file where
/// zune-jpeg by default fills the rest with grey, and reads one-scan-per-component baseline
/// files, which zune-jpeg 0.5.15 decodes in wrong colours.
fn jpeg(bytes: &[u8], limits: &Limits) -> Result<Decoded, ImageError> {
    let unreadable = |e: jpeg_decoder::Error| ImageError::Invalid(format!("unreadable JPEG: {e}"));
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(unreadable)?;
    let info = decoder
        .info()
        .ok_or_else(|| ImageError::invalid("unreadable JPEG: no frame header"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_dimensions(width.into(), height.into(), limits)?;
    // The decoder's own ceiling, should a later frame header disagree with the first.
    decoder.set_max_decoding_buffer_size(
        usize::try_from(limits.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX),
    );
    // The smallest of 1/8, 1/4, 1/2 and 1 whose longer side still covers the preview.
    let side = u16::try_from(PREVIEW_SIDE).unwrap_or(u16::MAX);
    let (scaled_width, scaled_height) = decoder.scale(side, side).map_err(unreadable)?;
    let pixels = decoder.decode().map_err(unreadable)?;
    let (scaled_width, scaled_height) = (u32::from(scaled_width), u32::from(scaled_height));
    let format = decoder
        .info()
        .map_or(info.pixel_format, |info| info.pixel_format);
    let (raster, profile) = match format {
        PixelFormat::RGB24 => (
            Raster::new(scaled_width, scaled_height, Layout::Rgb, pixels)?,
            decoder.icc_profile().map(Profile::Icc),
        ),
        // A profile of a grey or CMYK image does not describe the RGB made of it.
        PixelFormat::L8 => (
            Raster::new(scaled_width, scaled_height, Layout::Gray, pixels)?,
            None,
        ),
        PixelFormat::L16 => (
            Raster::new(scaled_width, scaled_height, Layout::Gray, narrow(pixels))?,
            None,
        ),
        PixelFormat::CMYK32 => (
            Raster::new(
                scaled_width,
                scaled_height,
                Layout::Rgb,
                cmyk_to_rgb(pixels),
            )?,
            None,
        ),
    };
    Ok(Decoded {
        width,
        height,
        raster,
        profile,
    })
}

fn png(bytes: &[u8], limits: &Limits) -> Result<Decoded, ImageError> {
    // The first chunk is IHDR, at a fixed place: its size is refused before the decoder runs.
    if let Some(ihdr) = bytes.get(8..24).filter(|ihdr| &ihdr[4..8] == b"IHDR") {
        let width = u32::from_be_bytes([ihdr[8], ihdr[9], ihdr[10], ihdr[11]]);
        let height = u32::from_be_bytes([ihdr[12], ihdr[13], ihdr[14], ihdr[15]]);
        check_dimensions(width.into(), height.into(), limits)?;
    }
    let unreadable = |e: image::ImageError| ImageError::Invalid(format!("unreadable PNG: {e}"));
    let mut decoder =
        PngDecoder::with_limits(Cursor::new(bytes), decoder_limits()).map_err(unreadable)?;
    let profile = decoder.icc_profile().map_err(unreadable)?.map(Profile::Icc);
    read(decoder, profile, limits, "PNG")
}

fn webp(bytes: &[u8], limits: &Limits) -> Result<Decoded, ImageError> {
    let unreadable = |e: image::ImageError| ImageError::Invalid(format!("unreadable WebP: {e}"));
    let mut decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(unreadable)?;
    decoder.set_limits(decoder_limits()).map_err(unreadable)?;
    // Read from the bytes rather than through the decoder, which sizes its buffer from the
    // chunk's length field before finding out the file is shorter.
    let profile = webp_icc_profile(bytes).map(|icc| Profile::Icc(icc.to_vec()));
    read(decoder, profile, limits, "WebP")
}

/// Checks the size, then decodes into a buffer of exactly the image's size.
fn read(
    decoder: impl ImageDecoder,
    profile: Option<Profile>,
    limits: &Limits,
    name: &str,
) -> Result<Decoded, ImageError> {
    let (width, height) = decoder.dimensions();
    check_dimensions(width.into(), height.into(), limits)?;
    let colour = decoder.color_type();
    let size = usize::try_from(decoder.total_bytes())
        .map_err(|_| ImageError::Invalid(format!("{width}×{height} {name} is too large")))?;
    let mut buffer = vec![0; size];
    decoder
        .read_image(&mut buffer)
        .map_err(|e| ImageError::Invalid(format!("unreadable {name}: {e}")))?;
    let (layout, data) = match colour {
        ColorType::L8 => (Layout::Gray, buffer),
        ColorType::La8 => (Layout::Gray, flatten(buffer, 1)),
        ColorType::Rgb8 => (Layout::Rgb, buffer),
        ColorType::Rgba8 => (Layout::Rgb, flatten(buffer, 3)),
        ColorType::L16 => (Layout::Gray, narrow(buffer)),
        ColorType::La16 => (Layout::Gray, flatten(narrow(buffer), 1)),
        ColorType::Rgb16 => (Layout::Rgb, narrow(buffer)),
        ColorType::Rgba16 => (Layout::Rgb, flatten(narrow(buffer), 3)),
        other => {
            return Err(ImageError::Invalid(format!(
                "{name} with {other:?} pixels is not supported"
            )));
        }
    };
    // A grey image's profile is a tone curve close to sRGB's; only RGB is converted.
    let profile = profile.filter(|_| layout == Layout::Rgb);
    Ok(Decoded {
        width,
        height,
        raster: Raster::new(width, height, layout, data)?,
        profile,
    })
}

fn decoder_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(u32::from(u16::MAX));
    limits.max_image_height = Some(u32::from(u16::MAX));
    limits.max_alloc = Some(DECODER_ALLOC);
    limits
}

/// The `ICCP` chunk of a WebP file, if one lies wholly inside it.
pub(super) fn webp_icc_profile(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 12; // after "RIFF", the size and "WEBP"
    while let Some(header) = bytes.get(at..at + 8) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body = at + 8;
        let end = body.checked_add(size)?;
        if &header[..4] == b"ICCP" {
            return bytes.get(body..end);
        }
        at = end.checked_add(size & 1)?;
    }
    None
}

/// 16-bit samples (native byte order, as `image` gives them) to 8, in place.
fn narrow(mut samples: Vec<u8>) -> Vec<u8> {
    let count = samples.len() / 2;
    for i in 0..count {
        let wide = u16::from_ne_bytes([samples[2 * i], samples[2 * i + 1]]);
        samples[i] = ((u32::from(wide) * 255 + 32_767) / 65_535) as u8;
    }
    samples.truncate(count);
    samples
}

/// Drops the alpha sample of each pixel, compositing onto white, in place.
fn flatten(mut samples: Vec<u8>, colour_channels: usize) -> Vec<u8> {
    let stride = colour_channels + 1;
    let count = samples.len() / stride;
    for i in 0..count {
        let alpha = u32::from(samples[i * stride + colour_channels]);
        for c in 0..colour_channels {
            let value = u32::from(samples[i * stride + c]);
            samples[i * colour_channels + c] =
                ((value * alpha + 255 * (255 - alpha) + 127) / 255) as u8;
        }
    }
    samples.truncate(count * colour_channels);
    samples
}

/// CMYK as jpeg-decoder gives it (Adobe's inversion undone) to RGB, in place.
fn cmyk_to_rgb(mut samples: Vec<u8>) -> Vec<u8> {
    let count = samples.len() / 4;
    for i in 0..count {
        let k = 255 - u32::from(samples[i * 4 + 3]);
        for c in 0..3 {
            let ink = 255 - u32::from(samples[i * 4 + c]);
            samples[i * 3 + c] = (ink * k / 255) as u8;
        }
    }
    samples.truncate(count * 3);
    samples
}

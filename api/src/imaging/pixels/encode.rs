//! Encoding derivatives as baseline JPEG.

use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder, SamplingFactor};

use super::{Layout, Raster};
use crate::imaging::{Encoded, ImageError};

/// A baseline JPEG with 4:2:0 chroma (averaged, not sampled) and Huffman tables fitted to the
/// image, which saves 10–15 % over the standard tables. With fitted tables and subsampled
/// chroma the encoder writes one scan per component: valid baseline JPEG that libjpeg-turbo
/// (browsers, Android), jpeg-decoder and ImageIO read, though zune-jpeg 0.5.15 (the `image`
/// crate's JPEG decoder) decodes its colours wrongly.
pub(super) fn jpeg(raster: &Raster, quality: u8) -> Result<Encoded, ImageError> {
    let side = |side: u32| {
        u16::try_from(side).map_err(|_| {
            ImageError::Invalid(format!(
                "{}×{} is too large for a JPEG",
                raster.width, raster.height
            ))
        })
    };
    let (width, height) = (side(raster.width)?, side(raster.height)?);
    let mut bytes = Vec::new();
    let mut encoder = Encoder::new(&mut bytes, quality);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
    encoder.set_optimized_huffman_tables(true);
    let colour = match raster.layout {
        Layout::Gray => ColorType::Luma,
        Layout::Rgb => ColorType::Rgb,
    };
    encoder
        .encode(&raster.data, width, height, colour)
        .map_err(|e| ImageError::Invalid(format!("encoding the JPEG failed: {e}")))?;
    Ok(Encoded {
        bytes,
        width: raster.width,
        height: raster.height,
    })
}

//! Encoding derivatives as baseline JPEG.

use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder, SamplingFactor};

use super::{Layout, Raster};
use crate::imaging::{Encoded, ImageError};

/// A baseline JPEG with 4:2:0 chroma (averaged, not sampled) and the standard Huffman tables.
/// Tables fitted to the image would save 10–15 %, but with them and subsampled chroma the
/// encoder writes one scan per component, which zune-jpeg 0.5 (the `image` crate's JPEG
/// decoder, what Rust clients use) decodes into garbage colours: every client must be able
/// to show a thumbnail, so the one interleaved scan every decoder reads wins.
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
    encoder.set_optimized_huffman_tables(false);
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

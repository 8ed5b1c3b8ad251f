//! Downscaling with fast_image_resize's SIMD convolution; never upscaling.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{Layout, Raster};
use crate::imaging::ImageError;

/// Lanczos3: the sharpest of the usual filters for downscaling, and at these sizes no slower
/// than Catmull-Rom in fast_image_resize (the bench measures both).
const FILTER: FilterType = FilterType::Lanczos3;

/// The size of `width`×`height` scaled to fit `max_side` on its longer side, keeping the
/// aspect; the size itself when it already fits. No side rounds to less than a pixel.
pub(super) fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(max_side).clamp(1, max_side)
    };
    (scale(width), scale(height))
}

/// `raster` at `width`×`height`, or `raster` itself when it is no larger.
pub(super) fn shrink(
    resizer: &mut Resizer,
    raster: Raster,
    width: u32,
    height: u32,
) -> Result<Raster, ImageError> {
    if raster.width <= width && raster.height <= height {
        return Ok(raster);
    }
    resized(resizer, &raster, width, height)
}

/// A copy of `raster` at `width`×`height`, or an unscaled copy when it is no larger.
pub(super) fn shrunk(
    resizer: &mut Resizer,
    raster: &Raster,
    width: u32,
    height: u32,
) -> Result<Raster, ImageError> {
    if raster.width <= width && raster.height <= height {
        return Ok(raster.clone());
    }
    resized(resizer, raster, width, height)
}

fn resized(
    resizer: &mut Resizer,
    raster: &Raster,
    width: u32,
    height: u32,
) -> Result<Raster, ImageError> {
    let (width, height) = (width.min(raster.width), height.min(raster.height));
    let pixel_type = match raster.layout {
        Layout::Gray => PixelType::U8,
        Layout::Rgb => PixelType::U8x3,
    };
    let failed = |e: &dyn std::fmt::Display| ImageError::Invalid(format!("resizing failed: {e}"));
    let source = ImageRef::new(raster.width, raster.height, &raster.data, pixel_type)
        .map_err(|e| failed(&e))?;
    let mut target = Image::new(width, height, pixel_type);
    resizer
        .resize(
            &source,
            &mut target,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FILTER)),
        )
        .map_err(|e| failed(&e))?;
    Raster::new(width, height, raster.layout, target.into_vec())
}

//! Turning pixels upright as the EXIF orientation says.

use super::Raster;
use crate::imaging::metadata::Orientation;

/// Whether showing the image upright swaps its width and height.
fn swaps_sides(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Transpose
            | Orientation::Rotate90
            | Orientation::Transverse
            | Orientation::Rotate270
    )
}

/// The size a stored `width`×`height` image is shown at.
pub(super) fn displayed_size(width: u32, height: u32, orientation: Orientation) -> (u32, u32) {
    if swaps_sides(orientation) {
        (height, width)
    } else {
        (width, height)
    }
}

/// The raster as it is to be shown.
pub(super) fn apply(raster: Raster, orientation: Orientation) -> Raster {
    let (w, h) = (raster.width as usize, raster.height as usize);
    // For each displayed pixel (x, y), the stored pixel it shows.
    let source: fn(usize, usize, usize, usize) -> (usize, usize) = match orientation {
        Orientation::Normal => return raster,
        Orientation::FlipHorizontal => |x, y, w, _| (w - 1 - x, y),
        Orientation::Rotate180 => |x, y, w, h| (w - 1 - x, h - 1 - y),
        Orientation::FlipVertical => |x, y, _, h| (x, h - 1 - y),
        Orientation::Transpose => |x, y, _, _| (y, x),
        Orientation::Rotate90 => |x, y, _, h| (y, h - 1 - x),
        Orientation::Transverse => |x, y, w, h| (w - 1 - y, h - 1 - x),
        Orientation::Rotate270 => |x, y, w, _| (w - 1 - y, x),
    };
    let (shown_width, shown_height) = displayed_size(raster.width, raster.height, orientation);
    let channels = raster.layout.channels();
    let mut data = vec![0; raster.data.len()];
    for (y, row) in data
        .chunks_exact_mut(shown_width as usize * channels)
        .enumerate()
    {
        for (x, pixel) in row.chunks_exact_mut(channels).enumerate() {
            let (sx, sy) = source(x, y, w, h);
            let at = (sy * w + sx) * channels;
            pixel.copy_from_slice(&raster.data[at..at + channels]);
        }
    }
    Raster {
        width: shown_width,
        height: shown_height,
        layout: raster.layout,
        data,
    }
}

//! ThumbHash: a placeholder of a few dozen bytes that a phone paints before the thumbnail.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fast_image_resize::Resizer;

use super::{Layout, Raster, resize};
use crate::imaging::ImageError;

/// The largest input `thumbhash` accepts on either side.
const MAX_SIDE: u32 = 100;

/// The base64 ThumbHash of an upright image.
pub(super) fn encode(resizer: &mut Resizer, upright: &Raster) -> Result<String, ImageError> {
    let (width, height) = resize::fit(upright.width, upright.height, MAX_SIDE);
    let small = resize::shrunk(resizer, upright, width, height)?;
    let rgba: Vec<u8> = match small.layout {
        Layout::Rgb => small
            .data
            .chunks_exact(3)
            .flat_map(|rgb| [rgb[0], rgb[1], rgb[2], 255])
            .collect(),
        Layout::Gray => small.data.iter().flat_map(|&l| [l, l, l, 255]).collect(),
    };
    let hash = ::thumbhash::rgba_to_thumb_hash(small.width as usize, small.height as usize, &rgba);
    Ok(STANDARD.encode(hash))
}

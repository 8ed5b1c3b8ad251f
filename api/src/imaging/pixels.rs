//! Decoding, resizing and encoding: the derivatives.

use super::metadata::Orientation;
use super::{Encoded, Format, ImageError, Limits};

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
pub fn render(
    _bytes: &[u8],
    format: Format,
    _orientation: Orientation,
    _limits: &Limits,
) -> Result<Rendered, ImageError> {
    Err(ImageError::Unsupported(format!(
        "no decoder for {format:?} yet"
    )))
}

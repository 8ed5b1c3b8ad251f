//! Reading what a photo's metadata says that Photon uses: its orientation and when it was taken.

use chrono::{DateTime, FixedOffset};

use super::Format;

/// EXIF orientation: how the stored pixels must be turned to be shown upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Orientation {
    /// 1: as stored.
    #[default]
    Normal,
    /// 2
    FlipHorizontal,
    /// 3
    Rotate180,
    /// 4
    FlipVertical,
    /// 5: transposed (flipped about the top-left to bottom-right diagonal).
    Transpose,
    /// 6: turn 90° clockwise to show.
    Rotate90,
    /// 7
    Transverse,
    /// 8: turn 90° counter-clockwise (270° clockwise) to show.
    Rotate270,
}

/// What the metadata says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub orientation: Orientation,
    pub taken_at: Option<DateTime<FixedOffset>>,
}

/// Reads the metadata; anything missing or malformed reads as the default.
pub fn read(_bytes: &[u8], _format: Format) -> Metadata {
    Metadata::default()
}

//! Copies of photos without their metadata: the full-size file other members download.
//!
//! Each format is edited at the container level, so the pixels are the uploader's own bytes,
//! never re-encoded: what goes is every block that can say where, when or with what a photo
//! was taken (EXIF, XMP, IPTC, comments, maker notes, appended images), what stays is what
//! the pixels need to be shown right (colour profiles, tables, image data). The orientation
//! is written back in a minimal EXIF block of its own, so viewers still show the photo upright.
//!
//! Every length in the input is checked against the bytes before it is used; a structure
//! that does not hold together is [`ImageError::Invalid`], never a guess.

mod heif;
// The container walks are shared with the test images (`super::fixtures`).
pub(super) mod jpeg;
pub(super) mod png;
mod tiff;
pub(super) mod webp;

use super::metadata::{self, Orientation};
use super::{Format, ImageError};

/// See [`super::shareable_copy`].
pub fn shareable_copy(bytes: &[u8], format: Format) -> Result<Vec<u8>, ImageError> {
    // `metadata::read` gives HEIF Normal, and a HEIF's rotation is not in its EXIF anyway.
    let orientation = match metadata::read(bytes, format).orientation {
        Orientation::Normal => None,
        turned => Some(turned),
    };
    match format {
        Format::Jpeg => jpeg::strip(bytes, orientation),
        Format::Png => png::strip(bytes, orientation),
        Format::Webp => webp::strip(bytes, orientation),
        Format::Heif => heif::strip(bytes),
    }
}

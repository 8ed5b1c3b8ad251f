//! Copies of photos without their metadata.

use super::{Format, ImageError};

/// See [`super::shareable_copy`].
pub fn shareable_copy(_bytes: &[u8], format: Format) -> Result<Vec<u8>, ImageError> {
    Err(ImageError::Unsupported(format!(
        "no copy of {format:?} yet"
    )))
}

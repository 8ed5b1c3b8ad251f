//! Test images, made here rather than downloaded: real encoded photos with the metadata blocks
//! phones write, and the broken and hostile files a worker must survive.
//!
//! Compiled for this crate's tests and, with the `fixtures` feature, for the end-to-end tests
//! and the benches. Everything here panics on misuse (it is test support), never on the bytes
//! it is given to look at.

mod exif;
mod hostile;
mod images;
mod pattern;
mod summary;

pub use exif::{ExifSpec, exif_block, phone_exif};
pub use hostile::{corrupt_jpeg, jpeg_header_claiming, mutations, png_header_claiming, truncated};
pub use images::{HEIF_IMAGE_DATA, heif_container, jpeg, jpeg_with_exif, png, webp};
pub use pattern::{Corner, pattern};
pub use summary::{MetadataSummary, summarize};

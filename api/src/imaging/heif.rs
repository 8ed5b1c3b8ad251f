//! HEIC/HEIF decoding through libheif (the `heif` feature).

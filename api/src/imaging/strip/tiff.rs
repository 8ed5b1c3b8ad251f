//! The smallest EXIF payload there is: a TIFF header and one IFD holding the orientation.

use crate::imaging::metadata::Orientation;

/// A big-endian TIFF structure whose IFD0 has one entry, Orientation (0x0112, SHORT).
pub(super) fn orientation_only(orientation: Orientation) -> Vec<u8> {
    const ORIENTATION: u16 = 0x0112;
    const SHORT: u16 = 3;
    let mut tiff = Vec::with_capacity(26);
    tiff.extend_from_slice(b"MM\0*");
    tiff.extend_from_slice(&8u32.to_be_bytes()); // IFD0 right after the header
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&ORIENTATION.to_be_bytes());
    tiff.extend_from_slice(&SHORT.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value, stored in the entry itself
    tiff.extend_from_slice(&orientation.exif_value().to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD: no thumbnail
    tiff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamadak_reads_it_back_with_nothing_else_in_it() {
        let tiff = orientation_only(Orientation::Rotate270);
        let exif = exif::Reader::new()
            .read_raw(tiff)
            .expect("a well-formed TIFF structure");
        assert_eq!(exif.fields().count(), 1);
        let field = exif
            .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
            .expect("the orientation");
        assert_eq!(field.value.get_uint(0), Some(8));
    }
}

//! Reading what a photo's metadata says that Photon uses: its orientation and when it was taken.
//!
//! Both come from the EXIF block, found and parsed by kamadak-exif, which reads only that block
//! (JPEG APP1, PNG eXIf, WebP EXIF, the HEIF `Exif` item) and never allocates more than the
//! bytes it is given hold, whatever a length field claims.

use std::io::Cursor;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use exif::{Exif, In, Tag, Value};

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

impl Orientation {
    /// The orientation an EXIF Orientation value (1–8) names; any other value names none.
    pub fn from_exif(value: u32) -> Option<Self> {
        Some(match value {
            1 => Self::Normal,
            2 => Self::FlipHorizontal,
            3 => Self::Rotate180,
            4 => Self::FlipVertical,
            5 => Self::Transpose,
            6 => Self::Rotate90,
            7 => Self::Transverse,
            8 => Self::Rotate270,
            _ => return None,
        })
    }

    /// Its EXIF Orientation value (1–8).
    pub fn exif_value(self) -> u16 {
        match self {
            Self::Normal => 1,
            Self::FlipHorizontal => 2,
            Self::Rotate180 => 3,
            Self::FlipVertical => 4,
            Self::Transpose => 5,
            Self::Rotate90 => 6,
            Self::Transverse => 7,
            Self::Rotate270 => 8,
        }
    }

    /// Whether showing the photo swaps its width and height.
    pub fn swaps_dimensions(self) -> bool {
        matches!(
            self,
            Self::Transpose | Self::Rotate90 | Self::Transverse | Self::Rotate270
        )
    }
}

/// What the metadata says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub orientation: Orientation,
    /// EXIF `DateTimeOriginal` (with `SubSecTimeOriginal`) at the offset `OffsetTimeOriginal`
    /// gives, else `OffsetTime`; a file that gives neither (most cameras before 2016, many
    /// Android phones) has its wall-clock time read as UTC, offset +00:00, since guessing a
    /// zone from GPS or the server's clock would be wrong more often than right. A malformed
    /// offset is treated as a missing one; a malformed date gives `None`.
    pub taken_at: Option<DateTime<FixedOffset>>,
}

/// Reads the metadata; anything missing or malformed reads as the default.
///
/// A HEIF's orientation is always [`Orientation::Normal`] here: its rotation and mirroring
/// live in the `irot`/`imir` item properties, which the decoder applies, and the HEIF
/// specification says an EXIF orientation in it must be ignored.
pub fn read(bytes: &[u8], format: Format) -> Metadata {
    let Some(exif) = parse(bytes) else {
        return Metadata::default();
    };
    let orientation = match format {
        Format::Heif => Orientation::Normal,
        Format::Jpeg | Format::Png | Format::Webp => orientation(&exif),
    };
    Metadata {
        orientation,
        taken_at: taken_at(&exif),
    }
}

/// The EXIF block of a container, with what could be read of it when some of it is broken.
fn parse(bytes: &[u8]) -> Option<Exif> {
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    match reader.read_from_container(&mut Cursor::new(bytes)) {
        Ok(exif) => Some(exif),
        Err(exif::Error::PartialResult(partial)) => Some(partial.into_inner().0),
        Err(_) => None,
    }
}

fn orientation(exif: &Exif) -> Orientation {
    exif.get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|field| field.value.get_uint(0))
        .and_then(Orientation::from_exif)
        .unwrap_or_default()
}

fn ascii(exif: &Exif, tag: Tag) -> Option<&[u8]> {
    match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(strings) => strings.first().map(Vec::as_slice),
        _ => None,
    }
}

fn taken_at(exif: &Exif) -> Option<DateTime<FixedOffset>> {
    let mut parsed = exif::DateTime::from_ascii(ascii(exif, Tag::DateTimeOriginal)?).ok()?;
    if let Some(subsec) = ascii(exif, Tag::SubSecTimeOriginal) {
        // A malformed fraction costs the fraction, not the time.
        if parsed.parse_subsec(subsec).is_err() {
            parsed.nanosecond = None;
        }
    }
    let offset_seconds = [Tag::OffsetTimeOriginal, Tag::OffsetTime]
        .into_iter()
        .find_map(|tag| parse_offset(ascii(exif, tag)?))
        .unwrap_or(0);
    let offset = FixedOffset::east_opt(offset_seconds)?;
    let local = NaiveDate::from_ymd_opt(
        i32::from(parsed.year),
        u32::from(parsed.month),
        u32::from(parsed.day),
    )?
    .and_hms_nano_opt(
        u32::from(parsed.hour),
        u32::from(parsed.minute),
        u32::from(parsed.second),
        parsed.nanosecond.unwrap_or(0),
    )?;
    offset.from_local_datetime(&local).single()
}

/// `+HH:MM` or `-HH:MM`, in seconds east of UTC.
fn parse_offset(text: &[u8]) -> Option<i32> {
    let [sign, h1, h2, b':', m1, m2, ..] = *text else {
        return None;
    };
    let digit = |b: u8| b.is_ascii_digit().then(|| i32::from(b - b'0'));
    let hours = digit(h1)? * 10 + digit(h2)?;
    let minutes = digit(m1)? * 10 + digit(m2)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let seconds = (hours * 60 + minutes) * 60;
    match sign {
        b'+' => Some(seconds),
        b'-' => Some(-seconds),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::fixtures::{self, ExifSpec};

    fn at(rfc3339: &str) -> Option<DateTime<FixedOffset>> {
        Some(DateTime::parse_from_rfc3339(rfc3339).expect("a valid test date"))
    }

    fn spec(taken_at: &'static str, offset: Option<&'static str>) -> ExifSpec {
        ExifSpec {
            taken_at: Some(taken_at),
            offset,
            ..ExifSpec::default()
        }
    }

    #[test]
    fn a_phone_jpeg_gives_its_orientation_and_the_time_at_its_offset() {
        let jpeg = fixtures::jpeg(64, 48, Some(&fixtures::phone_exif()));
        let meta = read(&jpeg, Format::Jpeg);
        assert_eq!(meta.orientation, Orientation::Rotate90);
        assert_eq!(meta.taken_at, at("2026-07-04T21:15:09+02:00"));
    }

    #[test]
    fn png_and_webp_carry_the_same_metadata() {
        let phone = fixtures::phone_exif();
        for (bytes, format) in [
            (fixtures::png(16, 12, Some(&phone)), Format::Png),
            (fixtures::webp(16, 12, Some(&phone)), Format::Webp),
        ] {
            let meta = read(&bytes, format);
            assert_eq!(meta.orientation, Orientation::Rotate90, "{format:?}");
            assert_eq!(meta.taken_at, at("2026-07-04T21:15:09+02:00"), "{format:?}");
        }
    }

    #[test]
    fn a_heif_keeps_its_date_but_never_takes_its_orientation_from_exif() {
        let heif = fixtures::heif_container(&fixtures::exif_block(&fixtures::phone_exif()));
        let meta = read(&heif, Format::Heif);
        assert_eq!(meta.orientation, Orientation::Normal);
        assert_eq!(meta.taken_at, at("2026-07-04T21:15:09+02:00"));
    }

    #[test]
    fn without_an_offset_the_wall_clock_time_is_read_as_utc() {
        let jpeg = fixtures::jpeg(16, 16, Some(&spec("2024:02:29 23:59:58", None)));
        assert_eq!(
            read(&jpeg, Format::Jpeg).taken_at,
            at("2024-02-29T23:59:58+00:00")
        );
    }

    #[test]
    fn offset_time_stands_in_for_a_missing_offset_time_original() {
        let exif = ExifSpec {
            offset_time: Some("-05:30"),
            ..spec("2026:01:02 03:04:05", None)
        };
        let jpeg = fixtures::jpeg(16, 16, Some(&exif));
        assert_eq!(
            read(&jpeg, Format::Jpeg).taken_at,
            at("2026-01-02T03:04:05-05:30")
        );
        let both = ExifSpec {
            offset_time: Some("-05:30"),
            ..spec("2026:01:02 03:04:05", Some("+09:00"))
        };
        let jpeg = fixtures::jpeg(16, 16, Some(&both));
        assert_eq!(
            read(&jpeg, Format::Jpeg).taken_at,
            at("2026-01-02T03:04:05+09:00"),
            "OffsetTimeOriginal is the capture's own"
        );
    }

    #[test]
    fn a_malformed_date_is_none_and_a_malformed_offset_is_utc() {
        for bad in [
            "2026:13:01 10:00:00",
            "2026:02:30 10:00:00",
            "2026:01:01 25:00:00",
            "    :  :     :  :  ",
            "yesterday",
            "",
        ] {
            let jpeg = fixtures::jpeg(16, 16, Some(&spec(bad, Some("+02:00"))));
            assert_eq!(read(&jpeg, Format::Jpeg).taken_at, None, "{bad:?}");
        }
        for bad in ["+2:00", "02:00", "+99:00", "      "] {
            let jpeg = fixtures::jpeg(16, 16, Some(&spec("2026:01:01 10:00:00", Some(bad))));
            assert_eq!(
                read(&jpeg, Format::Jpeg).taken_at,
                at("2026-01-01T10:00:00+00:00"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_orientation_value_is_read_and_nonsense_is_normal() {
        for value in 1..=8u16 {
            let exif = ExifSpec {
                orientation: Some(value),
                ..ExifSpec::default()
            };
            let jpeg = fixtures::jpeg(16, 16, Some(&exif));
            let orientation = read(&jpeg, Format::Jpeg).orientation;
            assert_eq!(orientation.exif_value(), value);
        }
        for nonsense in [0u16, 9, 0xFFFF] {
            let exif = ExifSpec {
                orientation: Some(nonsense),
                ..ExifSpec::default()
            };
            let jpeg = fixtures::jpeg(16, 16, Some(&exif));
            assert_eq!(read(&jpeg, Format::Jpeg).orientation, Orientation::Normal);
        }
    }

    #[test]
    fn no_exif_or_broken_exif_reads_as_the_default() {
        let plain = fixtures::jpeg(16, 16, None);
        assert_eq!(read(&plain, Format::Jpeg), Metadata::default());
        assert_eq!(read(b"", Format::Jpeg), Metadata::default());
        assert_eq!(
            read(b"\xFF\xD8\xFF\xE1\xFF\xFF", Format::Jpeg),
            Metadata::default()
        );
        assert_eq!(
            read(&fixtures::truncated(&plain), Format::Jpeg),
            Metadata::default()
        );
        // A TIFF header that claims its first IFD is 4 GB in.
        let broken = fixtures::jpeg_with_exif(16, 16, b"MM\0*\xFF\xFF\xFF\xF0");
        assert_eq!(read(&broken, Format::Jpeg), Metadata::default());
    }

    #[test]
    fn subseconds_are_kept() {
        let exif = ExifSpec {
            subsec: Some("042"),
            ..spec("2026:07:04 21:15:09", Some("+02:00"))
        };
        let jpeg = fixtures::jpeg(16, 16, Some(&exif));
        assert_eq!(
            read(&jpeg, Format::Jpeg).taken_at,
            at("2026-07-04T21:15:09.042+02:00")
        );
    }

    #[test]
    fn mutated_files_never_panic() {
        let jpeg = fixtures::jpeg(32, 32, Some(&fixtures::phone_exif()));
        fixtures::mutations(&jpeg, 2_000, 0x6d65_7461, |mutated| {
            let _ = read(mutated, Format::Jpeg);
        });
        let heif = fixtures::heif_container(&fixtures::exif_block(&fixtures::phone_exif()));
        fixtures::mutations(&heif, 2_000, 0x6865_6966, |mutated| {
            let _ = read(mutated, Format::Heif);
        });
    }
}

//! HEIF/HEIC at the container level: the bytes of the EXIF and XMP items are overwritten with
//! zeros where they lie, so no offset in the file moves and no decoder is needed.
//!
//! Only what locating those items takes is parsed (ISO/IEC 14496-12 boxes, `meta` → `iinf`
//! and `iloc`); a layout this cannot follow for certain is refused, never guessed at.

use std::ops::Range;

use crate::imaging::ImageError;

/// A box: its four-character type and what follows its header.
#[derive(Debug, Clone, Copy)]
struct BmffBox<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    /// Where `body` starts in the file.
    body_at: usize,
}

fn name(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// The boxes that fill `bytes` end to end; `bytes` start at `at` in the file.
fn boxes(bytes: &[u8], at: usize) -> Result<Vec<BmffBox<'_>>, ImageError> {
    let mut found = Vec::new();
    let mut rest = bytes;
    let mut at = at;
    while !rest.is_empty() {
        let mut header = Reader::new(rest, "box header");
        let size32 = header.u32()?;
        let kind: [u8; 4] = header.array()?;
        let size = match size32 {
            // The box runs to the end of what holds it.
            0 => rest.len() as u64,
            // A 64-bit size follows the type.
            1 => header.u64()?,
            n => u64::from(n),
        };
        if &kind == b"uuid" {
            header.take(16)?;
        }
        let header_len = header.pos as u64;
        if size < header_len {
            return Err(ImageError::invalid(format_args!(
                "HEIF: box {} is {size} bytes, smaller than its header",
                name(&kind)
            )));
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|&size| size <= rest.len())
            .ok_or_else(|| {
                ImageError::invalid(format_args!(
                    "HEIF: box {} claims {size} bytes, past the end of what holds it",
                    name(&kind)
                ))
            })?;
        found.push(BmffBox {
            kind,
            body: &rest[header.pos..size],
            body_at: at + header.pos,
        });
        rest = &rest[size..];
        at += size;
    }
    Ok(found)
}

/// The one box of `kind` among `boxes`, if any; two is a file that means two things.
fn only<'a>(boxes: &[BmffBox<'a>], kind: &[u8; 4]) -> Result<Option<BmffBox<'a>>, ImageError> {
    let mut matching = boxes.iter().filter(|b| &b.kind == kind);
    let first = matching.next().copied();
    if matching.next().is_some() {
        return Err(ImageError::invalid(format_args!(
            "HEIF: more than one {} box",
            name(kind)
        )));
    }
    Ok(first)
}

/// See [`super::shareable_copy`].
pub(super) fn strip(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    let top = boxes(bytes, 0)?;
    if top.first().map(|b| &b.kind) != Some(b"ftyp") {
        return Err(ImageError::invalid("HEIF: the first box is not ftyp"));
    }
    let meta = only(&top, b"meta")?.ok_or_else(|| ImageError::invalid("HEIF: no meta box"))?;
    let mut meta_body = Reader::new(meta.body, "meta");
    meta_body.full_box_header()?;
    let children = boxes(meta_body.rest(), meta.body_at + meta_body.pos)?;

    let metadata_items = match only(&children, b"iinf")? {
        Some(iinf) => metadata_items(iinf.body)?,
        None => Vec::new(),
    };
    let mut copy = bytes.to_vec();
    if metadata_items.is_empty() {
        return Ok(copy);
    }
    let Some(iloc) = only(&children, b"iloc")? else {
        // Items with no location have no bytes to remove.
        return Ok(copy);
    };
    let idat = only(&children, b"idat")?.map(|idat| idat.body_at..idat.body_at + idat.body.len());
    for range in item_ranges(iloc.body, &metadata_items, bytes.len(), idat)? {
        copy[range].fill(0);
    }
    Ok(copy)
}

/// The ids of the items that are EXIF (`Exif`) or XMP (`mime`, `application/rdf+xml`).
fn metadata_items(iinf: &[u8]) -> Result<Vec<u32>, ImageError> {
    let mut body = Reader::new(iinf, "iinf");
    let (version, _) = body.full_box_header()?;
    // The entry count is redundant with the boxes that follow; the boxes are what is read.
    if version == 0 {
        body.u16()?;
    } else {
        body.u32()?;
    }
    let mut ids = Vec::new();
    for entry in boxes(body.rest(), 0)?.iter().filter(|b| &b.kind == b"infe") {
        let mut infe = Reader::new(entry.body, "infe");
        let (version, _) = infe.full_box_header()?;
        let (id, item_type) = match version {
            // Versions 0 and 1 predate item types: only a MIME content type can say XMP.
            0 | 1 => (u32::from(infe.u16()?), *b"mime"),
            2 | 3 => {
                let id = if version == 2 {
                    u32::from(infe.u16()?)
                } else {
                    infe.u32()?
                };
                infe.u16()?; // protection index
                (id, infe.array()?)
            }
            v => {
                return Err(ImageError::invalid(format_args!(
                    "HEIF: item info entry version {v}"
                )));
            }
        };
        if version < 2 {
            infe.u16()?; // protection index
        }
        let is_metadata = match &item_type {
            b"Exif" => true,
            b"mime" => {
                infe.c_string()?; // item name
                infe.c_string()? == b"application/rdf+xml"
            }
            _ => false,
        };
        if is_metadata {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Where the bytes of `items` lie in the file, from the item location box: in the file itself
/// (construction method 0) or in the `idat` box (method 1), whose body lies at `idat`.
fn item_ranges(
    iloc: &[u8],
    items: &[u32],
    file_len: usize,
    idat: Option<Range<usize>>,
) -> Result<Vec<Range<usize>>, ImageError> {
    let mut body = Reader::new(iloc, "iloc");
    let (version, _) = body.full_box_header()?;
    if version > 2 {
        return Err(ImageError::invalid(format_args!(
            "HEIF: item location box version {version}"
        )));
    }
    let sizes = body.u8()?;
    let (offset_size, length_size) = (sizes >> 4, sizes & 0xF);
    let sizes = body.u8()?;
    let base_offset_size = sizes >> 4;
    let index_size = if version == 0 { 0 } else { sizes & 0xF };
    for size in [offset_size, length_size, base_offset_size, index_size] {
        if !matches!(size, 0 | 4 | 8) {
            return Err(ImageError::invalid(format_args!(
                "HEIF: item location field size {size}"
            )));
        }
    }
    let item_count = if version < 2 {
        u32::from(body.u16()?)
    } else {
        body.u32()?
    };
    let mut ranges = Vec::new();
    // Each item takes at least six bytes, so a hostile count ends at the box's end.
    for _ in 0..item_count {
        let id = if version < 2 {
            u32::from(body.u16()?)
        } else {
            body.u32()?
        };
        let construction_method = if version == 0 { 0 } else { body.u16()? & 0xF };
        let data_reference_index = body.u16()?;
        let base_offset = body.sized(base_offset_size)?;
        let extent_count = body.u16()?;
        let wanted = items.contains(&id);
        // Where this item's offsets count from, and where its bytes must end.
        let within = match (construction_method, data_reference_index, &idat) {
            (0, 0, _) => 0..file_len,
            (1, 0, Some(idat)) => idat.clone(),
            _ if !wanted => 0..0,
            _ => {
                return Err(ImageError::invalid(format_args!(
                    "HEIF: metadata item {id} is stored where this cannot follow \
                     (construction method {construction_method}, data reference \
                     {data_reference_index})"
                )));
            }
        };
        for _ in 0..extent_count {
            body.sized(index_size)?;
            let offset = body.sized(offset_size)?;
            let length = body.sized(length_size)?;
            if !wanted {
                continue;
            }
            if length == 0 {
                return Err(ImageError::invalid(format_args!(
                    "HEIF: metadata item {id} has an extent of unstated length"
                )));
            }
            let range = base_offset
                .checked_add(offset)
                .and_then(|start| Some(start..start.checked_add(length)?))
                .and_then(|r| {
                    let start = within.start.checked_add(usize::try_from(r.start).ok()?)?;
                    let end = within.start.checked_add(usize::try_from(r.end).ok()?)?;
                    Some(start..end)
                })
                .filter(|r| r.end <= within.end)
                .ok_or_else(|| {
                    ImageError::invalid(format_args!(
                        "HEIF: metadata item {id} lies past the end of what holds it"
                    ))
                })?;
            ranges.push(range);
        }
    }
    Ok(ranges)
}

/// Big-endian reads inside one box that fail, rather than run past it.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self {
            bytes,
            pos: 0,
            what,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ImageError> {
        let taken = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| ImageError::invalid(format_args!("HEIF: {} is cut off", self.what)))?;
        self.pos += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ImageError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ImageError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, ImageError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ImageError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ImageError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// An unsigned field of 0, 4 or 8 bytes (checked by the caller); absent reads as 0.
    fn sized(&mut self, size: u8) -> Result<u64, ImageError> {
        match size {
            4 => self.u32().map(u64::from),
            8 => self.u64(),
            _ => Ok(0),
        }
    }

    /// A full box's version and flags.
    fn full_box_header(&mut self) -> Result<(u8, u32), ImageError> {
        let word = self.u32()?;
        Ok(((word >> 24) as u8, word & 0x00FF_FFFF))
    }

    /// A NUL-terminated string, or the rest of the box when a writer left out the NUL.
    fn c_string(&mut self) -> Result<&'a [u8], ImageError> {
        let rest = self.rest();
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let text = self.take(len)?;
        if self.pos < self.bytes.len() {
            self.pos += 1;
        }
        Ok(text)
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::fixtures::{self, HEIF_IMAGE_DATA, MetadataSummary};
    use crate::imaging::{Format, shareable_copy};

    fn bmff(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(8 + body.len())
            .expect("small")
            .to_be_bytes()
            .to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn full(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
        let mut with_header = vec![version, 0, 0, 0];
        with_header.extend_from_slice(body);
        bmff(kind, &with_header)
    }

    fn ftyp() -> Vec<u8> {
        bmff(b"ftyp", b"heic\0\0\0\0mif1heic")
    }

    fn infe_v2(id: u16, kind: &[u8; 4], extra: &[u8]) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(kind);
        body.push(0);
        body.extend_from_slice(extra);
        full(b"infe", 2, &body)
    }

    /// ftyp, then meta holding iinf (`entries`), the iloc `iloc` makes from the offset at
    /// which `data` will lie, and `extra` boxes; then mdat holding `data`.
    fn file(
        entries: &[Vec<u8>],
        iloc: impl Fn(u64) -> Vec<u8>,
        extra: &[u8],
        data: &[u8],
    ) -> Vec<u8> {
        let mut iinf_body = u16::try_from(entries.len())
            .expect("few")
            .to_be_bytes()
            .to_vec();
        for entry in entries {
            iinf_body.extend_from_slice(entry);
        }
        let iinf = full(b"iinf", 0, &iinf_body);
        let build = |data_at: u64| {
            let mut children = iinf.clone();
            children.extend_from_slice(&iloc(data_at));
            children.extend_from_slice(extra);
            let mut out = ftyp();
            out.extend_from_slice(&full(b"meta", 0, &children));
            out
        };
        let data_at = build(0).len() as u64 + 8;
        let mut out = build(data_at);
        out.extend_from_slice(&bmff(b"mdat", data));
        out
    }

    fn push_sized(body: &mut Vec<u8>, size: u8, value: u64) {
        match size {
            4 => body.extend_from_slice(&u32::try_from(value).expect("fits").to_be_bytes()),
            8 => body.extend_from_slice(&value.to_be_bytes()),
            _ => assert_eq!(value, 0, "a 0-byte field can only say 0"),
        }
    }

    /// An iloc of `version` with the given field sizes and one extent per item:
    /// (id, construction method, base offset, offset, length).
    fn iloc(version: u8, sizes: [u8; 4], items: &[(u32, u16, u64, u64, u64)]) -> Vec<u8> {
        let [offset, length, base, index] = sizes;
        let mut body = vec![offset << 4 | length, base << 4 | index];
        let count = u32::try_from(items.len()).expect("few");
        if version < 2 {
            body.extend_from_slice(&u16::try_from(count).expect("few").to_be_bytes());
        } else {
            body.extend_from_slice(&count.to_be_bytes());
        }
        for &(id, method, base_value, offset_value, length_value) in items {
            if version < 2 {
                body.extend_from_slice(&u16::try_from(id).expect("small").to_be_bytes());
            } else {
                body.extend_from_slice(&id.to_be_bytes());
            }
            if version > 0 {
                body.extend_from_slice(&method.to_be_bytes());
            }
            body.extend_from_slice(&0u16.to_be_bytes()); // data reference: this file
            push_sized(&mut body, base, base_value);
            body.extend_from_slice(&1u16.to_be_bytes());
            if version > 0 {
                push_sized(&mut body, index, 0);
            }
            push_sized(&mut body, offset, offset_value);
            push_sized(&mut body, length, length_value);
        }
        full(b"iloc", version, &body)
    }

    fn v0(items: &[(u32, u64, u64)]) -> Vec<u8> {
        let items: Vec<_> = items
            .iter()
            .map(|&(id, at, len)| (id, 0, 0, at, len))
            .collect();
        iloc(0, [4, 4, 0, 0], &items)
    }

    #[test]
    fn exif_and_xmp_items_are_zeroed_in_place_and_nothing_else_changes() {
        let exif = fixtures::exif_block(&fixtures::phone_exif());
        let original = fixtures::heif_container(&exif);
        let before = fixtures::summarize(&original);
        assert!(before.has_gps && before.has_serial && before.has_maker_note && before.has_xmp);

        let copy = shareable_copy(&original, Format::Heif).expect("a shareable copy");

        assert_eq!(copy.len(), original.len(), "no offset moves");
        assert_eq!(fixtures::summarize(&copy), MetadataSummary::default());
        // mdat is last: the image item's bytes, then the Exif and XMP items.
        let image_end = original
            .windows(HEIF_IMAGE_DATA.len())
            .position(|w| w == HEIF_IMAGE_DATA)
            .expect("the image item")
            + HEIF_IMAGE_DATA.len();
        assert_eq!(copy[..image_end], original[..image_end]);
        assert!(copy[image_end..].iter().all(|&b| b == 0));
    }

    #[test]
    fn every_iloc_version_and_field_size_is_followed() {
        let entries = [infe_v2(1, b"hvc1", b""), infe_v2(2, b"Exif", b"")];
        // [offset, length, base offset, index] sizes.
        for (version, sizes) in [
            (0u8, [4u8, 4, 0, 0]),
            (0, [8, 8, 4, 0]),
            (1, [4, 4, 8, 4]),
            (1, [0, 4, 4, 0]),
            (2, [8, 4, 4, 8]),
        ] {
            let original = file(
                &entries,
                |at| {
                    // Split the position between the base and the offset where both exist.
                    let (base, offset) = match (sizes[2], sizes[0]) {
                        (0, _) => (0, at + 5),
                        (_, 0) => (at + 5, 0),
                        _ => (at, 5),
                    };
                    iloc(version, sizes, &[(2, 0, base, offset, 8)])
                },
                b"",
                b"IMAGEEXIFDATA",
            );
            let copy = strip(&original).expect("a copy");
            assert!(
                copy.ends_with(b"IMAGE\0\0\0\0\0\0\0\0"),
                "v{version} {sizes:?}"
            );
        }
    }

    #[test]
    fn xmp_is_found_by_content_type_and_other_mime_items_stay() {
        let entries = [
            infe_v2(1, b"mime", b"application/rdf+xml\0"),
            infe_v2(2, b"mime", b"text/css\0"),
        ];
        let original = file(
            &entries,
            |at| v0(&[(1, at, 6), (2, at + 6, 6)]),
            b"",
            b"XMPXMPCSSCSS",
        );
        let copy = strip(&original).expect("a copy");
        assert!(copy.ends_with(b"\0\0\0\0\0\0CSSCSS"));
    }

    #[test]
    fn exif_in_the_item_data_box_is_zeroed_there() {
        let entries = [infe_v2(1, b"hvc1", b""), infe_v2(2, b"Exif", b"")];
        let idat = bmff(b"idat", b"EXIFEXIF");
        let original = file(
            &entries,
            |at| iloc(1, [4, 4, 0, 0], &[(1, 0, 0, at, 5), (2, 1, 0, 2, 4)]),
            &idat,
            b"IMAGE",
        );
        let copy = strip(&original).expect("a copy");
        assert_eq!(copy.len(), original.len());
        assert!(contains(&copy, b"idatEX\0\0\0\0IF"));
        assert!(copy.ends_with(b"IMAGE"));

        let without_idat = file(
            &entries,
            |_| iloc(1, [4, 4, 0, 0], &[(2, 1, 0, 2, 4)]),
            b"",
            b"IMAGE",
        );
        assert!(matches!(strip(&without_idat), Err(ImageError::Invalid(_))));
        let past_idat = file(
            &entries,
            |_| iloc(1, [4, 4, 0, 0], &[(2, 1, 0, 6, 4)]),
            &idat,
            b"IMAGE",
        );
        assert!(matches!(strip(&past_idat), Err(ImageError::Invalid(_))));
    }

    fn contains(bytes: &[u8], needle: &[u8]) -> bool {
        bytes.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn items_of_other_kinds_may_live_where_this_cannot_follow() {
        let entries = [infe_v2(1, b"hvc1", b""), infe_v2(2, b"Exif", b"")];
        let original = file(
            &entries,
            |at| iloc(1, [4, 4, 0, 0], &[(1, 2, 0, 0, 4), (2, 0, 0, at, 4)]),
            b"",
            b"EXIF",
        );
        let copy = strip(&original).expect("a copy");
        assert!(copy.ends_with(b"\0\0\0\0"));
    }

    #[test]
    fn large_and_to_the_end_box_sizes_are_followed() {
        let original = fixtures::heif_container(&fixtures::exif_block(&fixtures::phone_exif()));
        let mut large = original.clone();
        large.extend_from_slice(&1u32.to_be_bytes());
        large.extend_from_slice(b"free");
        large.extend_from_slice(&20u64.to_be_bytes());
        large.extend_from_slice(b"four");
        let copy = strip(&large).expect("a copy");
        assert_eq!(copy.len(), large.len());
        assert!(!fixtures::summarize(&copy).has_gps);
        assert!(copy.ends_with(b"free\0\0\0\0\0\0\0\x14four"));

        let mdat_at = original
            .windows(4)
            .rposition(|w| w == b"mdat")
            .expect("an mdat")
            - 4;
        let mut to_end = original.clone();
        to_end[mdat_at..mdat_at + 4].copy_from_slice(&0u32.to_be_bytes());
        let copy = strip(&to_end).expect("a copy");
        assert!(!fixtures::summarize(&copy).has_gps);
    }

    #[test]
    fn hostile_structures_are_invalid() {
        let valid = fixtures::heif_container(&fixtures::exif_block(&fixtures::phone_exif()));
        let exif = [infe_v2(1, b"Exif", b"")];
        let with_tail = |tail: &[u8]| {
            let mut v = ftyp();
            v.extend_from_slice(tail);
            v
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("half", fixtures::truncated(&valid)),
            (
                "no ftyp first",
                [bmff(b"free", b""), valid.clone()].concat(),
            ),
            ("no meta", ftyp()),
            ("two metas", [valid.clone(), full(b"meta", 0, b"")].concat()),
            ("a cut box header", with_tail(&[0, 0, 0])),
            (
                "a box smaller than its header",
                with_tail(b"\0\0\0\x04meta"),
            ),
            (
                "a zero-size meta with no room for its header",
                with_tail(b"\0\0\0\0meta"),
            ),
            (
                "a 64-bit size smaller than its header",
                with_tail(b"\0\0\0\x01meta\0\0\0\0\0\0\0\x0c"),
            ),
            (
                "a 64-bit size past the end",
                with_tail(b"\0\0\0\x01meta\xff\xff\xff\xff\xff\xff\xff\xff"),
            ),
            (
                "a box past the end",
                [valid.clone(), b"\0\0\0\xc8free".to_vec()].concat(),
            ),
            (
                "huge extent offset",
                file(&exif, |_| v0(&[(1, 0xFFFF_FF00, 16)]), b"", b"x"),
            ),
            (
                "extent past the end",
                file(&exif, |at| v0(&[(1, at, 2)]), b"", b"x"),
            ),
            (
                "extent of unstated length",
                file(&exif, |at| v0(&[(1, at, 0)]), b"", b"x"),
            ),
            (
                "base plus offset overflows",
                file(
                    &exif,
                    |_| iloc(0, [8, 8, 8, 0], &[(1, 0, u64::MAX, u64::MAX, 1)]),
                    b"",
                    b"x",
                ),
            ),
            (
                "field size 2",
                file(&exif, |_| full(b"iloc", 0, &[0x24, 0, 0, 0]), b"", b"x"),
            ),
            (
                "iloc version 3",
                file(&exif, |_| full(b"iloc", 3, &[0x44, 0, 0, 0]), b"", b"x"),
            ),
            (
                "item count past the box",
                file(
                    &exif,
                    |_| full(b"iloc", 0, &[0x44, 0, 0xFF, 0xFF, 0, 1]),
                    b"",
                    b"x",
                ),
            ),
            (
                "exif by item offset",
                file(
                    &exif,
                    |_| iloc(1, [4, 4, 0, 0], &[(1, 2, 0, 0, 1)]),
                    b"",
                    b"x",
                ),
            ),
            (
                "exif in another file",
                file(
                    &exif,
                    |_| {
                        full(
                            b"iloc",
                            0,
                            &[0x44, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
                        )
                    },
                    b"",
                    b"x",
                ),
            ),
            (
                "infe version 4",
                file(&[full(b"infe", 4, &[0; 8])], |_| v0(&[]), b"", b"x"),
            ),
            (
                "a cut infe",
                file(&[full(b"infe", 2, &[0, 1, 0])], |_| v0(&[]), b"", b"x"),
            ),
            (
                "two ilocs",
                file(&exif, |at| [v0(&[(1, at, 1)]), v0(&[])].concat(), b"", b"x"),
            ),
        ];
        for (what, bytes) in cases {
            assert!(
                matches!(strip(&bytes), Err(ImageError::Invalid(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn mutated_files_never_panic() {
        let valid = fixtures::heif_container(&fixtures::exif_block(&fixtures::phone_exif()));
        let mut copies = 0;
        fixtures::mutations(&valid, 2_000, 0x6865_6963, |mutated| {
            if let Ok(copy) = strip(mutated) {
                copies += 1;
                assert_eq!(copy.len(), mutated.len());
            }
        });
        assert!(copies > 0);
    }
}

//! The ZIP layout of an archive: stored entries (photos are compressed already), each written
//! as a local header, its bytes and a data descriptor carrying the CRC-32 computed as the bytes
//! stream through, then the central directory. Every length depends only on the names and
//! sizes, so the archive's exact size is known before its first byte is sent (the response's
//! `Content-Length`, and `SessionArchive.byteSize`). ZIP64 records appear only where a size,
//! an offset or the entry count does not fit the classic fields, as readers expect.
//!
//! Formats follow PKWARE's APPNOTE 6.3: local file header (4.3.7), data descriptor (4.3.9),
//! central directory header (4.3.12), ZIP64 end of central directory record and locator
//! (4.3.14, 4.3.15), end of central directory record (4.3.16), the ZIP64 extra field (4.5.3)
//! and Info-ZIP's extended timestamp extra field (0x5455).

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};

/// The longest entry name, in bytes (its field holds 65,535; names are made far shorter, with
/// each path component within the 255 bytes file systems take).
pub const MAX_NAME_BYTES: usize = 1024;

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path in the archive, `/`-separated, UTF-8, at most [`MAX_NAME_BYTES`].
    pub name: String,
    pub size: u64,
    /// The wall-clock time shown for it (the DOS fields have no time zone).
    pub local_time: NaiveDateTime,
    /// The same instant, for the extended timestamp readers set the file's time from.
    pub modified: DateTime<Utc>,
}

/// Where an entry went and what its bytes came to: what the central directory lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub offset: u64,
    pub crc32: u32,
}

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;

/// Bit 3: sizes and CRC follow the data. Bit 11: the name is UTF-8.
const FLAGS: u16 = 0x0008 | 0x0800;
const STORED: u16 = 0;
const VERSION_PLAIN: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Made by Unix (so the mode bits below are read), spec version 4.5.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
/// A regular file, `rw-r--r--`, in the high half as Unix writers put it.
const EXTERNAL_ATTRIBUTES: u32 = 0o100_644 << 16;

const ZIP64_EXTRA: u16 = 0x0001;
const TIMESTAMP_EXTRA: u16 = 0x5455;

/// The largest value of a classic 32-bit field; this value itself means "see ZIP64".
const MAX_32: u64 = 0xFFFF_FFFF;
const MAX_16: u64 = 0xFFFF;

/// An entry too large for the classic size fields.
fn is_large(entry: &Entry) -> bool {
    entry.size >= MAX_32
}

/// The local file header of `entry`. Sizes and CRC are zero here (they follow the data); a
/// large entry announces ZIP64 sizes with an extra field so readers expect an 8-byte
/// descriptor.
pub fn local_header(entry: &Entry) -> Vec<u8> {
    let large = is_large(entry);
    let mut extra = timestamp_extra(entry);
    if large {
        extra.extend(ZIP64_EXTRA.to_le_bytes());
        extra.extend(16u16.to_le_bytes());
        extra.extend([0; 16]);
    }
    let (time, date) = dos_time(entry.local_time);
    let mut out = Vec::with_capacity(30 + entry.name.len() + extra.len());
    out.extend(LOCAL_HEADER.to_le_bytes());
    out.extend(if large { VERSION_ZIP64 } else { VERSION_PLAIN }.to_le_bytes());
    out.extend(FLAGS.to_le_bytes());
    out.extend(STORED.to_le_bytes());
    out.extend(time.to_le_bytes());
    out.extend(date.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    let size_field = if large { u32::MAX } else { 0 };
    out.extend(size_field.to_le_bytes());
    out.extend(size_field.to_le_bytes());
    out.extend(name_len(entry).to_le_bytes());
    out.extend(field_u16(extra.len()).to_le_bytes());
    out.extend(entry.name.as_bytes());
    out.extend(extra);
    out
}

/// What follows an entry's bytes: their CRC-32 and size (stored, so both sizes are one).
pub fn data_descriptor(entry: &Entry, crc32: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend(DATA_DESCRIPTOR.to_le_bytes());
    out.extend(crc32.to_le_bytes());
    if is_large(entry) {
        out.extend(entry.size.to_le_bytes());
        out.extend(entry.size.to_le_bytes());
    } else {
        let size = entry.size as u32;
        out.extend(size.to_le_bytes());
        out.extend(size.to_le_bytes());
    }
    out
}

/// The central directory and the end records, for entries written where `written` says,
/// the directory itself starting at `offset`.
pub fn central_directory(entries: &[Entry], written: &[Written], offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (entry, at) in entries.iter().zip(written) {
        central_header(&mut out, entry, *at);
    }
    let size = out.len() as u64;
    let count = entries.len() as u64;
    let zip64 = count >= MAX_16 || size >= MAX_32 || offset >= MAX_32;
    if zip64 {
        let record_at = offset + size;
        out.extend(ZIP64_END.to_le_bytes());
        // The record's size after this field.
        out.extend(44u64.to_le_bytes());
        out.extend(MADE_BY.to_le_bytes());
        out.extend(VERSION_ZIP64.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(count.to_le_bytes());
        out.extend(count.to_le_bytes());
        out.extend(size.to_le_bytes());
        out.extend(offset.to_le_bytes());
        out.extend(ZIP64_LOCATOR.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(record_at.to_le_bytes());
        out.extend(1u32.to_le_bytes());
    }
    let count16 = count.min(MAX_16) as u16;
    out.extend(END.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(count16.to_le_bytes());
    out.extend(count16.to_le_bytes());
    out.extend((size.min(MAX_32) as u32).to_le_bytes());
    out.extend((offset.min(MAX_32) as u32).to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

fn central_header(out: &mut Vec<u8>, entry: &Entry, at: Written) {
    let large = is_large(entry);
    let far = at.offset >= MAX_32;
    let mut zip64 = Vec::new();
    if large {
        zip64.extend(entry.size.to_le_bytes());
        zip64.extend(entry.size.to_le_bytes());
    }
    if far {
        zip64.extend(at.offset.to_le_bytes());
    }
    let mut extra = Vec::new();
    if !zip64.is_empty() {
        extra.extend(ZIP64_EXTRA.to_le_bytes());
        extra.extend(field_u16(zip64.len()).to_le_bytes());
        extra.extend(zip64);
    }
    extra.extend(timestamp_extra(entry));
    let (time, date) = dos_time(entry.local_time);
    let version = if large || far {
        VERSION_ZIP64
    } else {
        VERSION_PLAIN
    };
    let size = if large { u32::MAX } else { entry.size as u32 };
    let offset = if far { u32::MAX } else { at.offset as u32 };
    out.extend(CENTRAL_HEADER.to_le_bytes());
    out.extend(MADE_BY.to_le_bytes());
    out.extend(version.to_le_bytes());
    out.extend(FLAGS.to_le_bytes());
    out.extend(STORED.to_le_bytes());
    out.extend(time.to_le_bytes());
    out.extend(date.to_le_bytes());
    out.extend(at.crc32.to_le_bytes());
    out.extend(size.to_le_bytes());
    out.extend(size.to_le_bytes());
    out.extend(name_len(entry).to_le_bytes());
    out.extend(field_u16(extra.len()).to_le_bytes());
    // Comment length, disk number, internal attributes.
    out.extend([0; 6]);
    out.extend(EXTERNAL_ATTRIBUTES.to_le_bytes());
    out.extend(offset.to_le_bytes());
    out.extend(entry.name.as_bytes());
    out.extend(extra);
}

/// The exact size of the archive of `entries`, by laying it out without its bytes.
pub fn archive_size(entries: &[Entry]) -> u64 {
    let mut offset = 0u64;
    let mut written = Vec::with_capacity(entries.len());
    for entry in entries {
        written.push(Written { offset, crc32: 0 });
        offset +=
            local_header(entry).len() as u64 + entry.size + data_descriptor(entry, 0).len() as u64;
    }
    offset + central_directory(entries, &written, offset).len() as u64
}

/// The extended timestamp: the modification time in Unix seconds, the same in the local and
/// the central header.
fn timestamp_extra(entry: &Entry) -> Vec<u8> {
    let seconds = entry.modified.timestamp().clamp(0, i64::from(u32::MAX)) as u32;
    let mut out = Vec::with_capacity(9);
    out.extend(TIMESTAMP_EXTRA.to_le_bytes());
    out.extend(5u16.to_le_bytes());
    out.push(1);
    out.extend(seconds.to_le_bytes());
    out
}

/// MS-DOS time and date: two-second resolution, years 1980 to 2107.
fn dos_time(at: NaiveDateTime) -> (u16, u16) {
    let year = at.year().clamp(1980, 2107);
    let (month, day) = if at.year() < 1980 {
        (1, 1)
    } else {
        (at.month(), at.day())
    };
    let date = ((year - 1980) as u16) << 9 | (month as u16) << 5 | day as u16;
    let time = (at.hour() as u16) << 11 | (at.minute() as u16) << 5 | (at.second() / 2) as u16;
    (time, date)
}

fn name_len(entry: &Entry) -> u16 {
    field_u16(entry.name.len())
}

/// A 16-bit length. Extra fields here are at most 37 bytes and names are capped at
/// [`MAX_NAME_BYTES`] where they are made.
fn field_u16(len: usize) -> u16 {
    debug_assert!(len <= usize::from(u16::MAX));
    len.min(usize::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests;

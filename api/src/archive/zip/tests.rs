//! The layout read back by an independent reader (the `zip` crate), and the ZIP64 cases that
//! real archives reach only past 4 GiB or 65,535 photos.

use std::io::{Cursor, Read};

use chrono::{NaiveDate, TimeZone, Utc};

use super::*;

fn entry(name: &str, size: u64) -> Entry {
    let local_time = NaiveDate::from_ymd_opt(2026, 12, 3)
        .and_then(|d| d.and_hms_opt(21, 14, 7))
        .unwrap_or_default();
    Entry {
        name: name.to_owned(),
        size,
        local_time,
        modified: Utc.from_utc_datetime(&local_time) - chrono::Duration::hours(1),
    }
}

/// Writes the archive the way the stream does: header, bytes, descriptor, then the directory.
fn build(files: &[(Entry, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut written = Vec::new();
    for (entry, bytes) in files {
        let offset = out.len() as u64;
        out.extend(local_header(entry));
        out.extend(bytes);
        let crc32 = crc32fast::hash(bytes);
        out.extend(data_descriptor(entry, crc32));
        written.push(Written { offset, crc32 });
    }
    let entries: Vec<Entry> = files.iter().map(|(e, _)| e.clone()).collect();
    let at = out.len() as u64;
    out.extend(central_directory(&entries, &written, at));
    out
}

#[test]
fn an_independent_reader_gets_back_every_file_with_its_name_bytes_and_time() {
    let files = vec![
        (
            entry("Beach day/2026-12-03 21.14.07 Ana.jpg", 5),
            b"hello".to_vec(),
        ),
        (
            entry("Beach day/2026-12-03 21.14.07 Zoë.jpg", 0),
            Vec::new(),
        ),
        (
            entry("Beach day/2026-12-03 21.14.07 Ana (2).png", 70_000),
            (0..70_000u32).map(|i| (i % 251) as u8).collect(),
        ),
    ];
    let bytes = build(&files);
    let entries: Vec<Entry> = files.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(archive_size(&entries), bytes.len() as u64);

    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    assert_eq!(archive.len(), 3);
    for (i, (entry, content)) in files.iter().enumerate() {
        let mut file = archive.by_index(i).unwrap();
        assert_eq!(file.name(), entry.name);
        assert_eq!(file.compression(), zip::CompressionMethod::Stored);
        assert_eq!(file.size(), entry.size);
        assert_eq!(file.unix_mode(), Some(0o100_644));
        let modified = file.last_modified().unwrap();
        assert_eq!(
            (modified.year(), modified.month(), modified.day()),
            (2026, 12, 3)
        );
        assert_eq!(
            (modified.hour(), modified.minute(), modified.second()),
            (21, 14, 6),
            "DOS times count in two-second steps"
        );
        let mut read = Vec::new();
        // The reader checks the CRC-32 from the descriptor as it reads.
        file.read_to_end(&mut read).unwrap();
        assert_eq!(&read, content);
    }
}

#[test]
fn an_empty_archive_is_only_its_end_record() {
    let bytes = build(&[]);
    assert_eq!(bytes.len(), 22);
    assert_eq!(archive_size(&[]), 22);
    assert_eq!(zip::ZipArchive::new(Cursor::new(bytes)).unwrap().len(), 0);
}

#[test]
fn more_entries_than_the_classic_count_holds_get_zip64_end_records() {
    let files: Vec<(Entry, Vec<u8>)> = (0..70_000)
        .map(|i| (entry(&format!("p/{i}.jpg"), 1), vec![i as u8]))
        .collect();
    let bytes = build(&files);
    let entries: Vec<Entry> = files.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(archive_size(&entries), bytes.len() as u64);
    let end = &bytes[bytes.len() - 22..];
    assert_eq!(&end[8..12], &[0xFF; 4], "the classic counts say: see ZIP64");
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    assert_eq!(archive.len(), 70_000);
    let mut last = Vec::new();
    archive
        .by_name("p/69999.jpg")
        .unwrap()
        .read_to_end(&mut last)
        .unwrap();
    assert_eq!(last, vec![(69_999u32 % 256) as u8]);
}

#[test]
fn entries_past_4_gib_are_found_through_zip64_offsets() {
    let entries = vec![entry("a.jpg", 10), entry("b.jpg", 10)];
    let far = 5 * 1024 * 1024 * 1024u64;
    let written = [
        Written {
            offset: 0,
            crc32: 1,
        },
        Written {
            offset: far,
            crc32: 2,
        },
    ];
    let directory = central_directory(&entries, &written, far + 100);
    // The first header stays classic: 46 bytes, the name, and only the timestamp.
    let first = 46 + 5 + 9;
    assert_eq!(u32::from_le_bytes(directory[42..46].try_into().unwrap()), 0);
    let second = &directory[first..];
    assert_eq!(
        u32::from_le_bytes(second[..4].try_into().unwrap()),
        0x0201_4b50
    );
    assert_eq!(u16::from_le_bytes(second[6..8].try_into().unwrap()), 45);
    assert_eq!(
        u32::from_le_bytes(second[42..46].try_into().unwrap()),
        u32::MAX
    );
    // Its ZIP64 extra holds just the offset.
    let extra = &second[46 + 5..];
    assert_eq!(u16::from_le_bytes(extra[..2].try_into().unwrap()), 1);
    assert_eq!(u16::from_le_bytes(extra[2..4].try_into().unwrap()), 8);
    assert_eq!(u64::from_le_bytes(extra[4..12].try_into().unwrap()), far);
    // The directory starts past 4 GiB, so the ZIP64 end records follow it.
    let end = &directory[directory.len() - 22..];
    assert_eq!(&end[16..20], &[0xFF; 4]);
    let locator = &directory[directory.len() - 42..directory.len() - 22];
    assert_eq!(
        u32::from_le_bytes(locator[..4].try_into().unwrap()),
        0x0706_4b50
    );
}

#[test]
fn an_entry_of_4_gib_or_more_carries_zip64_sizes_everywhere() {
    let big = entry("big.jpg", 4 * 1024 * 1024 * 1024 + 1);
    let header = local_header(&big);
    assert_eq!(&header[18..26], &[0xFF; 8], "sizes: see ZIP64");
    assert_eq!(header.len(), 30 + 7 + 9 + 20);
    assert_eq!(data_descriptor(&big, 7).len(), 24);
    let small = entry("s.jpg", 1);
    assert_eq!(data_descriptor(&small, 7).len(), 16);
    // Layout: both local parts, the bytes, and a directory whose header has 16 bytes of
    // ZIP64 sizes and whose offset stays classic.
    let expected = (30 + 7 + 9 + 20) + big.size + 24 + (46 + 7 + 20 + 9) + 22;
    assert_eq!(archive_size(std::slice::from_ref(&big)), expected + 56 + 20);
}

#[test]
fn dos_times_stay_in_their_range() {
    let old = NaiveDate::from_ymd_opt(1970, 6, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap();
    assert_eq!(dos_time(old), (0, 1 << 5 | 1));
}

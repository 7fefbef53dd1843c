//! Parsing the primary GPT from the first sectors of a disk: the header at
//! LBA 1 and its entry array, both checked against their CRC32s (UEFI 2.10,
//! section 5.3). Only the primary copy is read; the backup at the end of the
//! disk matters only when the primary is damaged, and then this crate refuses
//! the disk rather than guess.

use thiserror::Error;

use crate::{Guid, SECTOR};

/// "EFI PART", the header signature (UEFI 2.10, table 5.5).
pub(crate) const SIGNATURE: &[u8; 8] = b"EFI PART";
/// The smallest header defined by the specification; larger headers are
/// allowed up to a sector and their extra bytes are covered by the CRC.
pub(crate) const MIN_HEADER_SIZE: u32 = 92;
/// Sectors before the first usable LBA on a standard disk: the protective
/// MBR, the header and 128 entries of 128 bytes (16 KiB).
const HEAD_SECTORS: u64 = 34;

// Byte offsets inside the header (UEFI 2.10, table 5.5).
pub(crate) const H_SIZE: usize = 12;
pub(crate) const H_CRC: usize = 16;
pub(crate) const H_MY_LBA: usize = 24;
pub(crate) const H_ALTERNATE_LBA: usize = 32;
pub(crate) const H_FIRST_USABLE: usize = 40;
pub(crate) const H_LAST_USABLE: usize = 48;
pub(crate) const H_DISK_GUID: usize = 56;
pub(crate) const H_ENTRIES_LBA: usize = 72;
pub(crate) const H_NUM_ENTRIES: usize = 80;
pub(crate) const H_ENTRY_SIZE: usize = 84;
pub(crate) const H_ENTRIES_CRC: usize = 88;

// Byte offsets inside a partition entry (UEFI 2.10, table 5.6).
pub(crate) const E_LAST_LBA: usize = 40;
const E_NAME: usize = 56;
/// The name is 36 UTF-16LE code units.
const E_NAME_LEN: usize = 72;
const MIN_ENTRY_SIZE: u32 = 128;

/// What is wrong with a partition table, or why it cannot be grown.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GptError {
    #[error("GPT: only {got} bytes were read from the start of the disk, {need} are needed (protective MBR, header and entry array)")]
    ShortBuffer { got: usize, need: usize },
    #[error("no GPT on this disk: LBA 1 does not start with the \"EFI PART\" signature")]
    NoSignature,
    #[error("GPT header at LBA 1 is corrupt: it says it is {size} bytes long (must be 92 to 512)")]
    BadHeaderSize { size: u32 },
    #[error("GPT header at LBA 1 is corrupt: its CRC32 field is {stored:#010x} but its bytes sum to {computed:#010x}")]
    HeaderCrc { stored: u32, computed: u32 },
    #[error("GPT header at LBA 1 says it is at LBA {my_lba}: not a primary header")]
    MisplacedHeader { my_lba: u64 },
    #[error("GPT header says partition entries are {size} bytes (must be a multiple of 8, at least 128)")]
    BadEntrySize { size: u32 },
    #[error("GPT entry array ({num_entries} entries of {entry_size} bytes at LBA {entries_lba}) does not end within the first {limit} bytes of the disk; this tool only handles the standard layout")]
    EntriesBeyondHead {
        entries_lba: u64,
        num_entries: u32,
        entry_size: u32,
        limit: usize,
    },
    #[error("GPT partition entry array is corrupt: the header records CRC32 {stored:#010x} but the entries sum to {computed:#010x}")]
    EntriesCrc { stored: u32, computed: u32 },
    #[error("GPT header is inconsistent: first usable LBA {first} is after last usable LBA {last}, or the backup header at LBA {alternate} is not after them")]
    BadUsableRange {
        first: u64,
        last: u64,
        alternate: u64,
    },
    #[error("GPT partition {number} is invalid: it starts at LBA {first_lba} and ends at LBA {last_lba}")]
    InvalidPartition {
        number: u32,
        first_lba: u64,
        last_lba: u64,
    },
    #[error("the disk has {disk_sectors} sectors but its GPT puts the backup header at LBA {alternate_lba}: the disk is smaller than its partition table says (was it shrunk?)")]
    DiskShrunk {
        disk_sectors: u64,
        alternate_lba: u64,
    },
    #[error("GPT has no partition to grow")]
    NoPartitions,
}

/// One used entry of the partition array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based index in the entry array (the `N` in `/dev/sdaN`).
    pub number: u32,
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    /// Inclusive, as GPT stores it.
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

impl Partition {
    /// Where the partition starts, in bytes from the start of the disk.
    pub fn byte_offset(&self) -> u64 {
        self.first_lba.saturating_mul(SECTOR)
    }

    /// The partition's length in bytes (its last LBA is inclusive).
    pub fn byte_len(&self) -> u64 {
        self.last_lba
            .saturating_sub(self.first_lba)
            .saturating_add(1)
            .saturating_mul(SECTOR)
    }
}

/// The primary GPT of a disk.
#[derive(Clone, Debug)]
pub struct Gpt {
    pub disk_guid: Guid,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    /// Where the backup header is; the last LBA of the disk when the table
    /// matches the disk's size.
    pub alternate_lba: u64,
    pub entries_lba: u64,
    pub num_entries: u32,
    pub entry_size: u32,
    /// Used entries only, in entry-array order.
    pub partitions: Vec<Partition>,
}

/// How many bytes from the start of the disk [`parse`] needs: 34 sectors
/// (protective MBR, header, 128 entries of 128 bytes), the layout every
/// common tool writes.
pub const fn head_len() -> usize {
    (HEAD_SECTORS * SECTOR) as usize
}

/// The parsed table plus the raw bytes [`crate::plan_grow_last`] rewrites.
pub(crate) struct RawGpt<'a> {
    pub gpt: Gpt,
    /// The header's `header_size` bytes.
    pub header: &'a [u8],
    /// The whole entry array, `num_entries * entry_size` bytes.
    pub entries: &'a [u8],
}

/// Parses and checks the primary GPT in `head`, the first [`head_len`] bytes
/// of a disk.
pub fn parse(head: &[u8]) -> Result<Gpt, GptError> {
    parse_raw(head).map(|raw| raw.gpt)
}

pub(crate) fn parse_raw(head: &[u8]) -> Result<RawGpt<'_>, GptError> {
    let limit = head_len();
    if head.len() < limit {
        return Err(GptError::ShortBuffer {
            got: head.len(),
            need: limit,
        });
    }
    let head = &head[..limit];
    let sector1 = &head[SECTOR as usize..2 * SECTOR as usize];
    if &sector1[..8] != SIGNATURE {
        return Err(GptError::NoSignature);
    }
    let size = le32(sector1, H_SIZE);
    if !(MIN_HEADER_SIZE..=SECTOR as u32).contains(&size) {
        return Err(GptError::BadHeaderSize { size });
    }
    let header = &sector1[..size as usize];
    let stored = le32(header, H_CRC);
    let computed = header_crc(header);
    if stored != computed {
        return Err(GptError::HeaderCrc { stored, computed });
    }
    let my_lba = le64(header, H_MY_LBA);
    if my_lba != 1 {
        return Err(GptError::MisplacedHeader { my_lba });
    }

    let entry_size = le32(header, H_ENTRY_SIZE);
    if entry_size < MIN_ENTRY_SIZE || !entry_size.is_multiple_of(8) {
        return Err(GptError::BadEntrySize { size: entry_size });
    }
    let entries_lba = le64(header, H_ENTRIES_LBA);
    let num_entries = le32(header, H_NUM_ENTRIES);
    let array_len = u64::from(num_entries) * u64::from(entry_size);
    let start = entries_lba.checked_mul(SECTOR);
    let end = start.and_then(|s| s.checked_add(array_len));
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) if entries_lba >= 2 && e <= limit as u64 => (s as usize, e as usize),
        _ => {
            return Err(GptError::EntriesBeyondHead {
                entries_lba,
                num_entries,
                entry_size,
                limit,
            })
        }
    };
    let entries = &head[start..end];
    let stored = le32(header, H_ENTRIES_CRC);
    let computed = crc32fast::hash(entries);
    if stored != computed {
        return Err(GptError::EntriesCrc { stored, computed });
    }

    let first_usable_lba = le64(header, H_FIRST_USABLE);
    let last_usable_lba = le64(header, H_LAST_USABLE);
    let alternate_lba = le64(header, H_ALTERNATE_LBA);
    if first_usable_lba > last_usable_lba || alternate_lba <= last_usable_lba {
        return Err(GptError::BadUsableRange {
            first: first_usable_lba,
            last: last_usable_lba,
            alternate: alternate_lba,
        });
    }

    let mut partitions = Vec::new();
    for (index, entry) in entries.chunks_exact(entry_size as usize).enumerate() {
        let type_guid = guid_at(entry, 0);
        if type_guid.is_nil() {
            continue;
        }
        // At most 16384 entries fit in the head, so the index fits in u32.
        let number = index as u32 + 1;
        let first_lba = le64(entry, 32);
        let last_lba = le64(entry, E_LAST_LBA);
        if first_lba > last_lba {
            return Err(GptError::InvalidPartition {
                number,
                first_lba,
                last_lba,
            });
        }
        partitions.push(Partition {
            number,
            type_guid,
            unique_guid: guid_at(entry, 16),
            first_lba,
            last_lba,
            attributes: le64(entry, 48),
            name: entry_name(&entry[E_NAME..E_NAME + E_NAME_LEN]),
        });
    }

    Ok(RawGpt {
        gpt: Gpt {
            disk_guid: guid_at(header, H_DISK_GUID),
            first_usable_lba,
            last_usable_lba,
            alternate_lba,
            entries_lba,
            num_entries,
            entry_size,
            partitions,
        },
        header,
        entries,
    })
}

/// CRC32 of a header with its own CRC field taken as zero, as the
/// specification defines it.
pub(crate) fn header_crc(header: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..H_CRC]);
    hasher.update(&[0; 4]);
    hasher.update(&header[H_CRC + 4..]);
    hasher.finalize()
}

/// The name field: UTF-16LE, ended by the first NUL or the field's end.
fn entry_name(field: &[u8]) -> String {
    let units: Vec<u16> = field
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

// The helpers below are only called with offsets inside slices whose length
// was checked above (a header is at least 92 bytes, an entry at least 128).
fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn guid_at(b: &[u8], at: usize) -> Guid {
    let mut v = [0; 16];
    v.copy_from_slice(&b[at..at + 16]);
    Guid(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    #[test]
    fn parses_a_valid_table() {
        let d = testutil::disk(16384);
        let gpt = parse(&d[..head_len()]).expect("valid table");
        assert_eq!(gpt.alternate_lba, 16383);
        assert_eq!(gpt.last_usable_lba, 16384 - 34);
        assert_eq!(gpt.partitions.len(), 2);
        let p = &gpt.partitions[1];
        assert_eq!((p.number, p.first_lba, p.last_lba), (2, 4096, 8191));
        assert_eq!(p.name, "two");
        assert_eq!(p.byte_offset(), 2 << 20);
        assert_eq!(p.byte_len(), 2 << 20);
    }

    #[test]
    fn short_buffers_are_refused() {
        let d = testutil::disk(16384);
        for len in [0, 1, 511, 512, 1024, head_len() - 1] {
            assert_eq!(
                parse(&d[..len]).unwrap_err(),
                GptError::ShortBuffer {
                    got: len,
                    need: head_len()
                }
            );
        }
    }

    #[test]
    fn bad_signature_is_refused() {
        let mut d = testutil::disk(16384);
        d[512] = b'X';
        assert_eq!(parse(&d).unwrap_err(), GptError::NoSignature);
        assert_eq!(
            parse(&vec![0; head_len()]).unwrap_err(),
            GptError::NoSignature
        );
    }

    #[test]
    fn corrupt_header_crc_is_refused() {
        let mut d = testutil::disk(16384);
        d[512 + 48] ^= 1; // last usable LBA, without resealing
        let err = parse(&d).unwrap_err();
        assert!(matches!(err, GptError::HeaderCrc { .. }), "{err}");
        assert!(err.to_string().contains("CRC32"), "{err}");
    }

    #[test]
    fn corrupt_entries_crc_is_refused() {
        let mut d = testutil::disk(16384);
        d[1024 + 40] ^= 1; // last LBA of partition 1
        assert!(matches!(
            parse(&d).unwrap_err(),
            GptError::EntriesCrc { .. }
        ));
    }

    #[test]
    fn entries_beyond_the_head_are_refused() {
        let mut d = testutil::disk(16384);
        d[512 + H_NUM_ENTRIES..512 + H_NUM_ENTRIES + 4].copy_from_slice(&256u32.to_le_bytes());
        testutil::reseal(&mut d);
        assert!(matches!(
            parse(&d).unwrap_err(),
            GptError::EntriesBeyondHead { .. }
        ));
        // An absurd entry array position must not overflow.
        let mut d = testutil::disk(16384);
        d[512 + H_ENTRIES_LBA..512 + H_ENTRIES_LBA + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        testutil::reseal(&mut d);
        assert!(matches!(
            parse(&d).unwrap_err(),
            GptError::EntriesBeyondHead { .. }
        ));
    }

    #[test]
    fn bad_header_size_and_entry_size_are_refused() {
        let mut d = testutil::disk(16384);
        d[512 + H_SIZE..512 + H_SIZE + 4].copy_from_slice(&4096u32.to_le_bytes());
        assert_eq!(
            parse(&d).unwrap_err(),
            GptError::BadHeaderSize { size: 4096 }
        );
        let mut d = testutil::disk(16384);
        d[512 + H_ENTRY_SIZE..512 + H_ENTRY_SIZE + 4].copy_from_slice(&0u32.to_le_bytes());
        testutil::reseal(&mut d);
        assert_eq!(parse(&d).unwrap_err(), GptError::BadEntrySize { size: 0 });
    }

    #[test]
    fn random_garbage_never_panics() {
        // A cheap deterministic fuzz: flip bytes in the header and entries
        // and reseal, so the checks after the CRC see odd values.
        let base = testutil::disk(16384);
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut d = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let at = 512 + (x as usize % 92);
                d[at] = (x >> 8) as u8;
            }
            testutil::reseal(&mut d);
            let _ = parse(&d[..head_len()]);
            let _ = crate::plan_grow_last(&d[..head_len()], 1 << 40);
        }
    }
}

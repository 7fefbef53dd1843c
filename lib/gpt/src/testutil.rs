//! A hand-built GPT disk in memory for the unit tests, so they need no tools.

use crate::table::header_crc;
use crate::{Guid, SECTOR};

/// A disk of `sectors` sectors with a protective MBR, primary and backup GPT
/// and two partitions: 1 MiB..2 MiB and 2 MiB..4 MiB.
pub fn disk(sectors: u64) -> Vec<u8> {
    let mut d = vec![0u8; (sectors * SECTOR) as usize];
    d[446 + 4] = 0xEE;
    d[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    d[446 + 12..446 + 16].copy_from_slice(&((sectors - 1) as u32).to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xAA;

    let mut entries = vec![0u8; 128 * 128];
    let linux: Guid = "0fc63daf-8483-4772-8e79-3d69d8477de4".parse().unwrap();
    for (i, (first, last, name)) in [(2048u64, 4095u64, "one"), (4096, 8191, "two")]
        .into_iter()
        .enumerate()
    {
        let e = &mut entries[i * 128..(i + 1) * 128];
        e[..16].copy_from_slice(&linux.0);
        e[16] = i as u8 + 1;
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (j, u) in name.encode_utf16().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let header = |my: u64, alt: u64, entries_lba: u64| {
        let mut h = vec![0u8; 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[56] = 0x42;
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32fast::hash(&entries).to_le_bytes());
        let crc = header_crc(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let s = SECTOR as usize;
    d[s..s + 92].copy_from_slice(&header(1, sectors - 1, 2));
    d[2 * s..34 * s].copy_from_slice(&entries);
    let backup_entries = (sectors - 33) as usize;
    d[backup_entries * s..(backup_entries + 32) * s].copy_from_slice(&entries);
    let last = (sectors - 1) as usize;
    d[last * s..last * s + 92].copy_from_slice(&header(sectors - 1, 1, sectors - 33));
    d
}

/// Re-seals the primary header after a test changed it.
pub fn reseal(d: &mut [u8]) {
    let s = SECTOR as usize;
    d[s + 16..s + 20].fill(0);
    let crc = header_crc(&d[s..s + 92]);
    d[s + 16..s + 20].copy_from_slice(&crc.to_le_bytes());
}

/// Re-seals the primary table after a fuzz target changed its header or
/// entries: the entry array's CRC (over what the header now says the array
/// is, when that lies inside `d`), then the header's.
pub fn seal(d: &mut [u8]) {
    let s = SECTOR as usize;
    let h = &d[s..s + 92];
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap()) as usize;
    let lba = u64::from_le_bytes(h[72..80].try_into().unwrap());
    let len = u32_at(80).saturating_mul(u32_at(84));
    let start = usize::try_from(lba).ok().and_then(|l| l.checked_mul(s));
    if let Some(range) = start.and_then(|a| Some(a..a.checked_add(len)?)) {
        if range.end <= d.len() {
            let crc = crc32fast::hash(&d[range]);
            d[s + 88..s + 92].copy_from_slice(&crc.to_le_bytes());
        }
    }
    reseal(d);
}

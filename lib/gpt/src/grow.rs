//! Planning the growth of a GPT disk after a hypervisor extended it: the
//! backup header and entry array move to the new end of the disk, the last
//! usable LBA rises, the last partition (the state partition on the
//! appliance) grows to a 1 MiB boundary near the end, and the protective MBR
//! covers the new size. The plan is a list of writes; the caller applies them.

use crate::table::{
    header_crc, parse_raw, GptError, E_LAST_LBA, H_ALTERNATE_LBA, H_CRC, H_ENTRIES_CRC,
    H_ENTRIES_LBA, H_LAST_USABLE, H_MY_LBA,
};
use crate::SECTOR;

/// Partitions end just before a 1 MiB boundary, the alignment every
/// partitioning tool uses and the one the image builder starts from.
const ALIGN_SECTORS: u64 = 2048;
/// Offset of the four partition records in the MBR.
const MBR_PARTITIONS: usize = 446;
/// The MBR partition type that marks a protective MBR.
const PROTECTIVE_TYPE: u8 = 0xEE;

/// The writes that make a GPT match a grown disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrowPlan {
    /// The 1-based number of the partition that grows (the one ending last).
    pub partition: u32,
    pub old_last_lba: u64,
    /// Equal to `old_last_lba` when the disk grew by less than what a 1 MiB
    /// aligned extension needs; the table is still moved.
    pub new_last_lba: u64,
    /// `(byte offset from the start of the disk, bytes)`, to be applied in
    /// order: the backup copy first, then the primary entries, the primary
    /// header and the MBR, so that until the primary header is rewritten the
    /// old primary table stays valid and a power cut leaves a usable disk.
    pub writes: Vec<(u64, Vec<u8>)>,
}

/// Plans the growth of the last partition to the end of a disk of
/// `disk_bytes` bytes, given the first [`crate::head_len`] bytes of the disk.
/// `None` when the table already ends at the end of the disk.
pub fn plan_grow_last(head: &[u8], disk_bytes: u64) -> Result<Option<GrowPlan>, GptError> {
    let raw = parse_raw(head)?;
    let gpt = &raw.gpt;
    let disk_sectors = disk_bytes / SECTOR;
    let last_sector = disk_sectors.saturating_sub(1);
    if gpt.alternate_lba == last_sector && disk_sectors > 0 {
        return Ok(None);
    }
    if gpt.alternate_lba > last_sector || disk_sectors == 0 {
        return Err(GptError::DiskShrunk {
            disk_sectors,
            alternate_lba: gpt.alternate_lba,
        });
    }
    let Some(last) = gpt.partitions.iter().max_by_key(|p| p.last_lba) else {
        return Err(GptError::NoPartitions);
    };

    // The backup array sits right before the backup header, in whole sectors.
    let array_sectors = (raw.entries.len() as u64).div_ceil(SECTOR);
    let new_alternate = last_sector;
    // The disk grew, so the backup moves up by at least a sector; a table
    // whose old usable range reached further than the new backup array
    // allows is not one to touch.
    let inconsistent = GptError::BadUsableRange {
        first: gpt.first_usable_lba,
        last: gpt.last_usable_lba,
        alternate: gpt.alternate_lba,
    };
    let Some(new_entries_lba) = new_alternate.checked_sub(array_sectors) else {
        return Err(inconsistent);
    };
    let new_last_usable = new_entries_lba.saturating_sub(1);
    if new_last_usable < gpt.last_usable_lba || new_entries_lba <= gpt.last_usable_lba {
        return Err(inconsistent);
    }

    let aligned_end = ((new_last_usable + 1) / ALIGN_SECTORS * ALIGN_SECTORS).checked_sub(1);
    let new_last_lba = match aligned_end {
        Some(end) if end > last.last_lba => end,
        _ => last.last_lba,
    };

    let mut entries = raw.entries.to_vec();
    let at = (last.number as usize - 1) * gpt.entry_size as usize + E_LAST_LBA;
    entries[at..at + 8].copy_from_slice(&new_last_lba.to_le_bytes());
    let entries_crc = crc32fast::hash(&entries);

    let mut primary = raw.header.to_vec();
    put64(&mut primary, H_ALTERNATE_LBA, new_alternate);
    put64(&mut primary, H_LAST_USABLE, new_last_usable);
    put32(&mut primary, H_ENTRIES_CRC, entries_crc);
    let mut backup = primary.clone();
    seal(&mut primary);

    put64(&mut backup, H_MY_LBA, new_alternate);
    put64(&mut backup, H_ALTERNATE_LBA, 1);
    put64(&mut backup, H_ENTRIES_LBA, new_entries_lba);
    seal(&mut backup);

    let mut writes = vec![
        (new_entries_lba * SECTOR, entries.clone()),
        (new_alternate * SECTOR, sector_of(&backup)),
        (gpt.entries_lba * SECTOR, entries),
        (SECTOR, sector_of(&primary)),
    ];
    if let Some(mbr) = protective_mbr(head, disk_sectors) {
        writes.push((0, mbr));
    }

    Ok(Some(GrowPlan {
        partition: last.number,
        old_last_lba: last.last_lba,
        new_last_lba,
        writes,
    }))
}

/// Sector 0 with its protective (0xEE) record resized to cover the disk, or
/// `None` when there is no such record (a hybrid or missing MBR is left as
/// it is: rewriting it could hide partitions another OS relies on).
fn protective_mbr(head: &[u8], disk_sectors: u64) -> Option<Vec<u8>> {
    let mut mbr = head[..SECTOR as usize].to_vec();
    let record = (0..4)
        .map(|i| MBR_PARTITIONS + 16 * i)
        .find(|&r| mbr[r + 4] == PROTECTIVE_TYPE)?;
    // The record starts at LBA 1 and covers the rest of the disk, capped at
    // what 32 bits hold (UEFI 2.10, table 5.4).
    let size = (disk_sectors - 1).min(u64::from(u32::MAX)) as u32;
    mbr[record + 12..record + 16].copy_from_slice(&size.to_le_bytes());
    Some(mbr)
}

/// Recomputes a header's CRC over its own bytes.
fn seal(header: &mut [u8]) {
    let crc = header_crc(header);
    put32(header, H_CRC, crc);
}

/// A header padded with zeros to a whole sector (the reserved rest of the
/// header sector must be zero).
fn sector_of(header: &[u8]) -> Vec<u8> {
    let mut sector = vec![0; SECTOR as usize];
    sector[..header.len()].copy_from_slice(header);
    sector
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{head_len, parse, testutil};

    fn apply(disk: &mut [u8], plan: &GrowPlan) {
        for (at, bytes) in &plan.writes {
            let at = *at as usize;
            disk[at..at + bytes.len()].copy_from_slice(bytes);
        }
    }

    #[test]
    fn unchanged_disk_needs_no_plan() {
        let d = testutil::disk(16384);
        assert_eq!(plan_grow_last(&d[..head_len()], d.len() as u64), Ok(None));
    }

    #[test]
    fn smaller_disk_is_an_error() {
        let d = testutil::disk(16384);
        let err = plan_grow_last(&d[..head_len()], (d.len() - 512) as u64).unwrap_err();
        assert_eq!(
            err,
            GptError::DiskShrunk {
                disk_sectors: 16383,
                alternate_lba: 16383
            }
        );
        assert!(plan_grow_last(&d[..head_len()], 0).is_err());
    }

    #[test]
    fn grows_the_last_partition_to_a_mebibyte_boundary() {
        let mut d = testutil::disk(16384);
        // 16 MiB plus half a MiB: the partition may only end at 16 MiB.
        d.resize((16384 + 1024) * 512, 0);
        let plan = plan_grow_last(&d[..head_len()], d.len() as u64)
            .expect("plan")
            .expect("the disk grew");
        assert_eq!(plan.partition, 2);
        assert_eq!(plan.old_last_lba, 8191);
        assert_eq!(plan.new_last_lba, 16383);
        apply(&mut d, &plan);

        let gpt = parse(&d[..head_len()]).expect("primary still valid");
        assert_eq!(gpt.alternate_lba, 17407);
        assert_eq!(gpt.last_usable_lba, 17407 - 33);
        assert_eq!(gpt.partitions[1].last_lba, 16383);
        assert_eq!(gpt.partitions[0].last_lba, 4095);
        assert_eq!(u32::from_le_bytes(d[458..462].try_into().unwrap()), 17407);

        // The backup header is a valid mirror: check its CRCs by hand.
        let b = &d[17407 * 512..17407 * 512 + 92];
        assert_eq!(&b[..8], b"EFI PART");
        let stored = u32::from_le_bytes(b[16..20].try_into().unwrap());
        assert_eq!(stored, crate::table::header_crc(b));
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 17407);
        assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 1);
        let entries_lba = u64::from_le_bytes(b[72..80].try_into().unwrap());
        assert_eq!(entries_lba, 17407 - 32);
        let at = entries_lba as usize * 512;
        assert_eq!(&d[at..at + 16384], &d[1024..1024 + 16384]);

        // Applying the plan again finds nothing to do.
        assert_eq!(plan_grow_last(&d[..head_len()], d.len() as u64), Ok(None));
    }

    #[test]
    fn a_small_growth_moves_the_table_but_not_the_partition() {
        // First grow to 17 MiB: partition 2 then ends at 16 MiB.
        let mut d = testutil::disk(16384);
        d.resize(17 << 20, 0);
        let plan = plan_grow_last(&d[..head_len()], d.len() as u64)
            .expect("plan")
            .expect("the disk grew");
        apply(&mut d, &plan);
        assert_eq!(plan.new_last_lba, (16 << 11) - 1);
        // Then by 8 sectors: no room for another MiB.
        d.resize((17 << 20) + 8 * 512, 0);
        let plan = plan_grow_last(&d[..head_len()], d.len() as u64)
            .expect("plan")
            .expect("the disk grew");
        assert_eq!(plan.new_last_lba, plan.old_last_lba);
        apply(&mut d, &plan);
        assert_eq!(parse(&d).expect("valid").alternate_lba, (17 << 11) + 7);
    }
}

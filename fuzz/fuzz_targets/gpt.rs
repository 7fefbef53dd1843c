//! Fuzzes PID 1's reading of the boot disk's GPT (the hypervisor hands it
//! the disk) and the plan that grows the last partition. The input
//! overwrites a valid table's primary header fields and entries, which are
//! then re-sealed with correct CRCs, so the parser's checks past the CRCs
//! are reached. Properties: no panic; a plan's writes lie inside the grown
//! disk, and applying them gives a table that parses, ends at the disk's
//! end and needs no further growth.
#![no_main]

use gateway_gpt::{head_len, parse, plan_grow_last, testutil, SECTOR};
use libfuzzer_sys::fuzz_target;

// The test disk's partitions end at sector 8191; its backup table follows.
const SECTORS: u64 = 8 * 1024 + 64;

fuzz_target!(|data: &[u8]| {
    let Some((&grow, data)) = data.split_first() else {
        return;
    };
    let mut disk = testutil::disk(SECTORS);
    let s = SECTOR as usize;
    // Header bytes 24..88 (LBAs, usable range, GUID, entry array) then the
    // first entries; the signature, revision and size stay.
    let (header, entries) = data.split_at(data.len().min(64));
    disk[s + 24..s + 24 + header.len()].copy_from_slice(header);
    let entries = &entries[..entries.len().min(32 * s)];
    disk[2 * s..2 * s + entries.len()].copy_from_slice(entries);
    testutil::seal(&mut disk);
    let head = &disk[..head_len()];
    let _ = parse(head);
    let grown = SECTORS + u64::from(grow) * 64;
    let Ok(Some(plan)) = plan_grow_last(head, grown * SECTOR) else {
        return;
    };
    disk.resize((grown * SECTOR) as usize, 0);
    for (at, bytes) in &plan.writes {
        let at = usize::try_from(*at).unwrap();
        assert!(
            at + bytes.len() <= disk.len(),
            "a write past the disk's end"
        );
        disk[at..at + bytes.len()].copy_from_slice(bytes);
    }
    let gpt = parse(&disk[..head_len()]).expect("the grown table parses");
    assert_eq!(gpt.alternate_lba, grown - 1);
    assert_eq!(
        plan_grow_last(&disk[..head_len()], grown * SECTOR).map(|p| p.is_none()),
        Ok(true)
    );
});

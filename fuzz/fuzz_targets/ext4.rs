//! Fuzzes what PID 1 reads from a disk it did not write: the first
//! mebibyte of a candidate patch disk (`gateway_init::disks::content`:
//! blank, our ext4, or foreign) and the ext4 superblock of the state and
//! patch filesystems (`disks::ext4`), with the sums PID 1 then makes of it
//! (its size, whether the filesystem must grow into its partition). The
//! input is a byte, the disk image and 8 bytes of partition size; after a
//! first byte of 0 the image is from byte 0, after any other from the
//! superblock (the kilobyte before it zero), so the superblock's fields are
//! reached at once.
//! Properties: no panic on any bytes; a disk taken for the patch disk has
//! the PATCH label; a superblock's block size is a power of two from 1 KiB
//! to 64 KiB, and its size is blocks times block size, saturated at
//! `u64::MAX` (an overflow here was the first finding).
#![no_main]

use gateway_init::boot::statefs::needs_resize;
use gateway_init::disks::content::{classify, Content, PATCH_LABEL, PROBE_LEN};
use gateway_init::disks::ext4::{Superblock, SUPERBLOCK_LEN, SUPERBLOCK_OFFSET};
use gateway_init::disks::patch::gib;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&from_zero, data)) = data.split_first() else {
        return;
    };
    let (partition, image) = match data.split_last_chunk::<8>() {
        Some((image, size)) => (u64::from_le_bytes(*size), image),
        None => (0, data),
    };
    let mut padded = Vec::new();
    let image = if from_zero == 0 {
        image
    } else {
        padded.resize(SUPERBLOCK_OFFSET as usize, 0);
        padded.extend_from_slice(image);
        &padded[..]
    };
    let probe = &image[..image.len().min(PROBE_LEN)];
    if let Content::Patch(sb) = classify(probe) {
        assert_eq!(sb.label, PATCH_LABEL);
    }
    let at = SUPERBLOCK_OFFSET as usize;
    let Some(sb) = image.get(at..(at + SUPERBLOCK_LEN).min(image.len())) else {
        return;
    };
    let Some(sb) = Superblock::parse(sb) else {
        return;
    };
    assert!(sb.block_size.is_power_of_two());
    assert!((1024..=65536).contains(&sb.block_size));
    let exact = u128::from(sb.blocks) * u128::from(sb.block_size);
    assert_eq!(u128::from(sb.size_bytes()), exact.min(u128::from(u64::MAX)));
    let _ = gib(sb.size_bytes());
    let _ = needs_resize(&sb, partition);
});

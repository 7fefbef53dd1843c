//! The appliance disk layout: GPT with 512-byte sectors, partitions on 1 MiB
//! boundaries, and fixed GUIDs. Every GUID here is fixed (generated once,
//! never reused elsewhere) so that `root=PARTUUID=...` on the kernel command
//! line stays valid for every image ever built, and so that PID 1 and the
//! tests can find partitions by identity rather than by device name.

use gateway_gpt::Guid;

/// One mebibyte: the alignment of every partition.
pub const MIB: u64 = 1 << 20;
/// One gibibyte.
pub const GIB: u64 = 1 << 30;
/// Logical sector size of the disk.
pub const SECTOR: u64 = gateway_gpt::SECTOR;
/// The virtual size of a released image; sparse, so it costs only what is
/// written.
pub const DEFAULT_DISK_SIZE: u64 = 40 * GIB;

/// The disk's GPT label-id.
pub const DISK_GUID: &str = "e926af18-3d79-4e20-8b22-4f603170fac1";
/// PARTUUID of root A, the one the kernel mounts as `/`.
pub const ROOT_A_PARTUUID: &str = "4f00b130-a8ee-4ba6-9a47-c6ced35862a3";
/// ext4 UUID of the root filesystem (also its directory hash seed, so that
/// two builds of the same tree give the same image).
pub const ROOT_FS_UUID: &str = "337d1530-658d-450d-b0f3-15fa6a7124f6";
/// ext4 UUID of the state filesystem as built; PID 1 finds the state
/// partition by its PARTUUID or label, not by this.
pub const STATE_FS_UUID: &str = "21500ec9-b2d6-4d52-a81c-7b5c52f9e3fe";
/// FAT volume serial number of the boot partition (8 hex digits).
pub const BOOT_VOLUME_ID: &str = "90696144";

/// GPT type: EFI system partition.
pub const TYPE_ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
/// GPT type: Linux root (x86-64), from the Discoverable Partitions
/// Specification.
pub const TYPE_ROOT_X86_64: &str = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
/// GPT type: Linux filesystem data.
pub const TYPE_LINUX_FS: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

/// GPT attribute bit 2, "legacy BIOS bootable": syslinux's gptmbr.bin boots
/// the first partition that carries it.
pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// One partition of the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSpec {
    /// 1-based GPT entry number.
    pub number: u32,
    /// The GPT partition name.
    pub name: &'static str,
    pub type_guid: &'static str,
    /// PARTUUID.
    pub uuid: &'static str,
    /// Byte offset from the start of the disk.
    pub start: u64,
    /// Size in bytes; `None` for the partition that takes the rest.
    pub size: Option<u64>,
    pub attributes: u64,
}

/// Boot / EFI system partition: FAT32, bootloader and kernel.
pub const BOOT: PartitionSpec = PartitionSpec {
    number: 1,
    name: "boot",
    type_guid: TYPE_ESP,
    uuid: "70e7f33b-d8bc-4da7-8b49-b0911e32561e",
    start: MIB,
    size: Some(64 * MIB),
    attributes: ATTR_LEGACY_BIOS_BOOTABLE,
};

/// Root A: the read-only ext4 root the appliance boots.
pub const ROOT_A: PartitionSpec = PartitionSpec {
    number: 2,
    name: "root-a",
    type_guid: TYPE_ROOT_X86_64,
    uuid: ROOT_A_PARTUUID,
    start: 65 * MIB,
    size: Some(ROOT_SIZE),
    attributes: 0,
};

/// Root B: same size, empty until A/B updates exist.
pub const ROOT_B: PartitionSpec = PartitionSpec {
    number: 3,
    name: "root-b",
    type_guid: TYPE_ROOT_X86_64,
    uuid: "755f6b53-6b38-48aa-bb42-206d13ae6702",
    start: 321 * MIB,
    size: Some(ROOT_SIZE),
    attributes: 0,
};

/// State: configuration and logs, ext4 labelled STATE, grown by PID 1 to
/// fill the disk.
pub const STATE: PartitionSpec = PartitionSpec {
    number: 4,
    name: "state",
    type_guid: TYPE_LINUX_FS,
    uuid: "5e8f531f-c4b5-42f6-a239-290d9bd75347",
    start: 577 * MIB,
    size: None,
    attributes: 0,
};

/// All partitions, in GPT entry order.
pub const PARTITIONS: [PartitionSpec; 4] = [BOOT, ROOT_A, ROOT_B, STATE];

/// Size of each root partition, and so the largest root filesystem image.
pub const ROOT_SIZE: u64 = 256 * MIB;
/// The smallest state partition worth building: a 16 MiB journal plus room
/// for configuration and a few logs.
pub const MIN_STATE_SIZE: u64 = 64 * MIB;
/// Space kept free at the end of the disk: the backup GPT (33 sectors),
/// rounded up so the state partition ends on a 1 MiB boundary, which is
/// also where PID 1's growth plan puts the end after the disk is extended.
pub const TAIL_RESERVE: u64 = MIB;

/// Labels of the filesystems.
pub const BOOT_LABEL: &str = "BOOT";
pub const ROOT_LABEL: &str = "ROOT-A";
pub const STATE_LABEL: &str = "STATE";

/// The smallest disk the layout fits on.
pub const fn min_disk_size() -> u64 {
    STATE.start + MIN_STATE_SIZE + TAIL_RESERVE
}

/// Size of the state partition on a disk of `disk_size` bytes (which must
/// be at least [`min_disk_size`]).
pub const fn state_size(disk_size: u64) -> u64 {
    disk_size.saturating_sub(STATE.start + TAIL_RESERVE)
}

/// The size of a partition on a disk of `disk_size` bytes.
pub const fn partition_size(p: &PartitionSpec, disk_size: u64) -> u64 {
    match p.size {
        Some(size) => size,
        None => state_size(disk_size),
    }
}

/// The kernel command line: root by PARTUUID (controllers reorder disks),
/// read-only root, consoles on the screen and the first serial port, and a
/// reboot 10 s after a panic rather than a hung VM.
pub fn kernel_cmdline() -> String {
    format!(
        "root=PARTUUID={ROOT_A_PARTUUID} ro rootfstype=ext4 rootwait console=tty0 \
         console=ttyS0,115200 quiet panic=10"
    )
}

/// A name for the GPT partition types this layout uses.
pub fn type_name(type_guid: &Guid) -> &'static str {
    let known = [
        (TYPE_ESP, "EFI system"),
        (TYPE_ROOT_X86_64, "Linux root (x86-64)"),
        (TYPE_LINUX_FS, "Linux filesystem"),
    ];
    known
        .iter()
        .find(|(text, _)| Guid::parse_text(text) == Some(*type_guid))
        .map_or("unknown", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_valid_and_distinct() {
        let mut all = vec![DISK_GUID, ROOT_FS_UUID, STATE_FS_UUID];
        all.extend(PARTITIONS.iter().map(|p| p.uuid));
        for g in &all {
            assert!(Guid::parse_text(g).is_some(), "{g}");
            assert_eq!(g.to_lowercase(), *g);
        }
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), all.len());
    }

    #[test]
    fn partitions_are_aligned_and_contiguous() {
        let disk = 2 * GIB;
        let mut next = MIB;
        for p in PARTITIONS {
            assert_eq!(p.start, next, "{}", p.name);
            assert_eq!(p.start % MIB, 0);
            next = p.start + partition_size(&p, disk);
        }
        assert_eq!(next, disk - TAIL_RESERVE);
        assert_eq!(ROOT_A.uuid, ROOT_A_PARTUUID);
    }

    #[test]
    fn cmdline_names_root_a() {
        let c = kernel_cmdline();
        assert!(c.starts_with("root=PARTUUID=4f00b130-a8ee-4ba6-9a47-c6ced35862a3 ro "));
        assert!(c.ends_with("panic=10"));
    }
}

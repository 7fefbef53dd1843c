//! The state partition: found on the boot disk by its label STATE, its
//! partition grown to the end of the disk when the disk was extended, checked
//! with e2fsck, mounted at /var, and its filesystem grown online to fill the
//! partition.
//!
//! Facts are gathered first ([`Facts`]), the actions follow from them
//! ([`plan`]), and only then is anything written. When the partition cannot be
//! used, /var becomes a tmpfs so the appliance still runs (without
//! persistence), and the reason is logged.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, MsFlags};
use tracing::{info, warn};

use crate::disks::blockdev::{device_of, BlockdevError, Disk, PartitionDev, Sysfs};
use crate::disks::ext4::{Superblock, SUPERBLOCK_LEN, SUPERBLOCK_OFFSET};

pub const STATE_LABEL: &str = "STATE";
pub const MOUNT_POINT: &str = "/var";
const E2FSCK: &str = "/sbin/e2fsck";
const RESIZE2FS: &str = "/sbin/resize2fs";

#[derive(Debug, thiserror::Error)]
pub enum StatefsError {
    #[error("find the boot disk: {0}")]
    BootDisk(#[from] BlockdevError),
    #[error("no partition labelled {STATE_LABEL} on /dev/{disk}")]
    NotFound { disk: String },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write the partition table of {path}: {source}")]
    WriteTable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("partition table of {path}: {source}")]
    Table {
        path: PathBuf,
        source: gateway_gpt::GptError,
    },
    #[error("tell the kernel /dev/{name} grew: {source}")]
    ResizePartition { name: String, source: nix::Error },
    #[error("run {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} found errors it could not correct on {device} (exit code {code})")]
    Fsck {
        command: String,
        device: PathBuf,
        code: i32,
    },
    #[error("{command} failed on {device} (exit code {code})")]
    Resize {
        command: String,
        device: PathBuf,
        code: i32,
    },
    #[error("mount {device} on {MOUNT_POINT}: {source}")]
    Mount { device: PathBuf, source: nix::Error },
}

/// What the boot disk looks like now.
pub struct Facts {
    pub disk: Disk,
    pub state: PartitionDev,
    /// The first sectors of the disk, for the GPT.
    pub head: Vec<u8>,
}

pub fn gather(sysfs: &Sysfs) -> Result<Facts, StatefsError> {
    let (major, minor) = device_of("/")?;
    let disk = sysfs.disk_of(major, minor)?;
    let state = disk
        .partitions
        .iter()
        .find(|p| {
            read_superblock(&p.dev_path())
                .ok()
                .flatten()
                .is_some_and(|sb| sb.label == STATE_LABEL)
        })
        .cloned()
        .ok_or_else(|| StatefsError::NotFound {
            disk: disk.name.clone(),
        })?;
    let mut head = vec![0u8; gateway_gpt::head_len()];
    let path = disk.dev_path();
    File::open(&path)
        .and_then(|f| f.read_exact_at(&mut head, 0))
        .map_err(|source| StatefsError::Read {
            path: path.clone(),
            source,
        })?;
    Ok(Facts { disk, state, head })
}

pub fn read_superblock(device: &Path) -> Result<Option<Superblock>, StatefsError> {
    let mut sb = vec![0u8; SUPERBLOCK_LEN];
    File::open(device)
        .and_then(|f| f.read_exact_at(&mut sb, SUPERBLOCK_OFFSET))
        .map_err(|source| StatefsError::Read {
            path: device.to_owned(),
            source,
        })?;
    Ok(Superblock::parse(&sb))
}

/// Grows the state partition to the end of the disk when the disk grew.
/// Returns the new size in sectors when it did.
pub fn grow_partition(facts: &Facts) -> Result<Option<u64>, StatefsError> {
    let path = facts.disk.dev_path();
    let plan =
        gateway_gpt::plan_grow_last(&facts.head, facts.disk.sectors * 512).map_err(|source| {
            StatefsError::Table {
                path: path.clone(),
                source,
            }
        })?;
    let Some(plan) = plan else { return Ok(None) };
    if plan.partition != facts.state.number {
        warn!(
            "disk /dev/{} grew but its last partition is {}, not the state partition: left as it is",
            facts.disk.name, plan.partition
        );
        return Ok(None);
    }
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| StatefsError::WriteTable {
            path: path.clone(),
            source,
        })?;
    // The backup table at the new end is written first and the primary last,
    // so an interruption leaves a primary table that still describes the disk.
    for (offset, bytes) in plan.writes.iter().rev() {
        disk.write_all_at(bytes, *offset)
            .map_err(|source| StatefsError::WriteTable {
                path: path.clone(),
                source,
            })?;
    }
    disk.sync_all().map_err(|source| StatefsError::WriteTable {
        path: path.clone(),
        source,
    })?;
    let sectors = plan.new_last_lba + 1 - facts.state.start;
    blkpg_resize(&disk, &facts.state, sectors)?;
    Ok(Some(sectors))
}

#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

const BLKPG_RESIZE_PARTITION: libc::c_int = 3;
nix::ioctl_write_ptr_bad!(
    blkpg_ioctl,
    nix::request_code_none!(0x12, 105),
    BlkpgIoctlArg
);

/// BLKPG_RESIZE_PARTITION: unlike re-reading the whole table (BLKRRPART), it
/// works while another partition of the disk (the root) is mounted.
fn blkpg_resize(disk: &File, part: &PartitionDev, sectors: u64) -> Result<(), StatefsError> {
    let mut p = BlkpgPartition {
        start: (part.start * 512) as libc::c_longlong,
        length: (sectors * 512) as libc::c_longlong,
        pno: part.number as libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut p as *mut BlkpgPartition).cast(),
    };
    // SAFETY: `arg` and the partition record it points to live on this stack
    // frame for the duration of the call; the kernel only reads them.
    unsafe { blkpg_ioctl(disk.as_raw_fd(), &arg) }.map_err(|source| {
        StatefsError::ResizePartition {
            name: part.name.clone(),
            source,
        }
    })?;
    Ok(())
}

/// What e2fsck reported, from its exit code (e2fsck(8), "EXIT CODE").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckOutcome {
    Clean,
    Corrected,
    Uncorrected(i32),
}

pub fn fsck_outcome(code: i32) -> FsckOutcome {
    match code {
        0 => FsckOutcome::Clean,
        // 2 ("reboot needed") matters only for a mounted root; ours is not mounted.
        c if c & !3 == 0 => FsckOutcome::Corrected,
        c => FsckOutcome::Uncorrected(c),
    }
}

/// Runs a tool and logs what it printed, one line at a time with the tool's
/// name, so its report sits in the log with the uptime like every step.
pub(crate) fn run(command: &str, args: &[&str]) -> Result<i32, StatefsError> {
    let out =
        crate::pid1::children::output(Command::new(command).args(args)).map_err(|source| {
            StatefsError::Spawn {
                command: command.to_owned(),
                source,
            }
        })?;
    let name = Path::new(command)
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| !l.trim().is_empty())
    {
        info!("{name}: {line}");
    }
    let status = out.status;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// e2fsck in preen mode; when preening is not enough (code 4), a full check
/// answering yes: on the state partition, losing a damaged file beats not
/// booting.
pub fn check(device: &Path) -> Result<FsckOutcome, StatefsError> {
    let dev = device.to_string_lossy();
    let outcome = fsck_outcome(run(E2FSCK, &["-p", &dev])?);
    if let FsckOutcome::Uncorrected(code) = outcome {
        warn!("{E2FSCK} -p {dev}: exit code {code}, running a full check");
        let code = run(E2FSCK, &["-f", "-y", &dev])?;
        return match fsck_outcome(code) {
            FsckOutcome::Uncorrected(code) => Err(StatefsError::Fsck {
                command: E2FSCK.into(),
                device: device.to_owned(),
                code,
            }),
            _ => Ok(FsckOutcome::Corrected),
        };
    }
    Ok(outcome)
}

pub fn mount_state(device: &Path) -> Result<(), StatefsError> {
    mount(
        Some(device),
        MOUNT_POINT,
        Some("ext4"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .map_err(|source| StatefsError::Mount {
        device: device.to_owned(),
        source,
    })
}

/// Whether the filesystem is smaller than its partition by at least a block.
pub fn needs_resize(fs: &Superblock, partition_bytes: u64) -> bool {
    fs.size_bytes()
        .checked_add(fs.block_size)
        .is_some_and(|needed| needed <= partition_bytes)
}

/// resize2fs on the mounted filesystem: ext4 grows online, so no forced
/// full check is needed first.
pub fn resize(device: &Path) -> Result<(), StatefsError> {
    let dev = device.to_string_lossy();
    match run(RESIZE2FS, &[&dev])? {
        0 => Ok(()),
        code => Err(StatefsError::Resize {
            command: RESIZE2FS.into(),
            device: device.to_owned(),
            code,
        }),
    }
}

/// The whole step, logging as it goes. Falls back to a tmpfs /var; says
/// whether /var is the state partition (what is written there persists).
pub fn prepare(sysfs: &Sysfs) -> bool {
    if let Err(e) = prepare_inner(sysfs) {
        warn!("state partition unavailable ({e}): settings and logs will not persist");
        let r = mount(
            Some("tmpfs"),
            MOUNT_POINT,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755,size=20%"),
        );
        if let Err(e) = r {
            warn!("mount tmpfs on {MOUNT_POINT}: {e}");
        }
        return false;
    }
    true
}

fn prepare_inner(sysfs: &Sysfs) -> Result<(), StatefsError> {
    let facts = gather(sysfs)?;
    let device = facts.state.dev_path();
    let mut part_sectors = facts.state.sectors;
    match grow_partition(&facts) {
        Ok(Some(sectors)) => {
            info!(
                "state: partition {} grown from {} MiB to {} MiB (the disk was extended)",
                device.display(),
                part_sectors / 2048,
                sectors / 2048
            );
            part_sectors = sectors;
        }
        Ok(None) => {}
        Err(e) => warn!("state: could not grow the partition: {e}"),
    }
    match check(&device)? {
        FsckOutcome::Clean => info!("state: {} checked, clean", device.display()),
        FsckOutcome::Corrected => warn!("state: {} checked, errors corrected", device.display()),
        FsckOutcome::Uncorrected(_) => {}
    }
    mount_state(&device)?;
    info!("state: {} mounted on {MOUNT_POINT}", device.display());
    super::factory_reset::at_boot(Path::new(MOUNT_POINT));
    if let Some(sb) = read_superblock(&device)? {
        if needs_resize(&sb, part_sectors * 512) {
            let before = sb.size_bytes();
            match resize(&device) {
                Ok(()) => {
                    let after = read_superblock(&device)?
                        .map(|s| s.size_bytes())
                        .unwrap_or(0);
                    info!(
                        "state: filesystem grown from {} MiB to {} MiB",
                        before >> 20,
                        after >> 20
                    );
                }
                Err(e) => warn!("state: {e}"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsck_codes() {
        assert_eq!(fsck_outcome(0), FsckOutcome::Clean);
        assert_eq!(fsck_outcome(1), FsckOutcome::Corrected);
        assert_eq!(fsck_outcome(3), FsckOutcome::Corrected);
        assert_eq!(fsck_outcome(4), FsckOutcome::Uncorrected(4));
        assert_eq!(fsck_outcome(8), FsckOutcome::Uncorrected(8));
        assert_eq!(fsck_outcome(5), FsckOutcome::Uncorrected(5));
    }

    #[test]
    fn resize_only_when_a_block_or_more_is_unused() {
        let sb = Superblock {
            label: "STATE".into(),
            block_size: 4096,
            blocks: 1000,
        };
        assert!(!needs_resize(&sb, 4096 * 1000));
        assert!(!needs_resize(&sb, 4096 * 1000 + 4095));
        assert!(needs_resize(&sb, 4096 * 1001));
    }

    #[test]
    fn a_filesystem_larger_than_any_disk_needs_no_resize() {
        // Found by the ext4 fuzz target: the size saturates, and a block
        // more is past any partition.
        let sb = Superblock {
            label: "STATE".into(),
            block_size: 65536,
            blocks: u64::MAX,
        };
        assert!(!needs_resize(&sb, u64::MAX));
    }
}

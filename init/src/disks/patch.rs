//! The patch disk: the first disk after the boot disk, formatted ext4 when
//! it is blank and large enough, checked at every boot, mounted at
//! [`MOUNT_POINT`], and grown when the administrator extended it while the
//! VM was off. A disk holding anything else is left alone until the
//! administrator confirms, through the control API, that it may be erased.

use gateway_control::protocol::DiskStatus;
use nix::mount::{mount, MsFlags};
use tracing::{info, warn};

use super::content::{self, Content, PATCH_LABEL};
use super::discover::Candidate;
use crate::boot::statefs::{self, FsckOutcome, StatefsError};

/// Where the patch disk is mounted.
pub const MOUNT_POINT: &str = "/var/lib/patch";
const MKE2FS: &str = "/sbin/mke2fs";
const GIB: u64 = 1 << 30;

/// Sizes in words, one decimal: "2.0 GiB".
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

fn too_small(size: u64, min_gib: u32) -> String {
    format!(
        "too small: {}; patch mode needs at least {min_gib} GiB (patch.min_disk_gib)",
        gib(size)
    )
}

/// Why patch mode may not be on with the patch disk as it is; the words
/// the control API answers a `set` of `patch.enabled` with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("no patch disk: attach a second disk of at least {min_gib} GiB (patch.min_disk_gib) and reboot")]
    NoDisk { min_gib: u32 },
    #[error("the patch disk {device} is {}", too_small(*size_bytes, *min_gib))]
    TooSmall {
        device: String,
        size_bytes: u64,
        min_gib: u32,
    },
    #[error("the patch disk {device} is not usable: {state}")]
    NotUsable { device: String, state: String },
}

/// Why the patch disk was not formatted, checked or mounted: the control
/// API's answer to `format_patch_disk`, and the disk's state at boot.
#[derive(Debug, thiserror::Error)]
pub enum PatchDiskError {
    #[error("the patch disk {device} is already formatted and mounted at {MOUNT_POINT}")]
    InUse { device: String },
    #[error("read /dev/{device}: {source}")]
    Read {
        device: String,
        source: std::io::Error,
    },
    #[error("the disk {device} already carries the patch filesystem: erase=true formats it again (its cache is lost)")]
    HoldsPatch { device: String },
    #[error("the disk {device} holds {what}: formatting destroys it; confirm with erase=true")]
    HoldsOther { device: String, what: String },
    /// mke2fs could not be run, or e2fsck failed.
    #[error("{0}")]
    Tool(#[from] StatefsError),
    #[error("{MKE2FS} failed (exit code {code})")]
    Mkfs { code: i32 },
    #[error("create {MOUNT_POINT}: {0}")]
    CreateMountPoint(std::io::Error),
    #[error("mount on {MOUNT_POINT}: {0}")]
    Mount(nix::Error),
}

fn status(
    disk: &Candidate,
    filesystem: Option<String>,
    mount: Option<String>,
    state: String,
) -> DiskStatus {
    DiskStatus {
        role: "patch".into(),
        device: disk.name.clone(),
        location: disk.location.clone(),
        size_bytes: disk.size_bytes(),
        filesystem,
        mount,
        state,
    }
}

/// What the boot does with the patch disk; never formats anything but a
/// blank disk.
pub fn prepare(disk: &Candidate, min_gib: u32) -> DiskStatus {
    let dev = disk.dev_path();
    let found = match content::read(&dev) {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot be read: {e}");
            warn!("patch disk {}: {why}", disk.name);
            return status(disk, None, None, why);
        }
    };
    let big_enough = disk.size_bytes() >= u64::from(min_gib) * GIB;
    match found {
        Content::Foreign(what) => {
            let why = format!(
                "holds {what}: not formatted (format_patch_disk with erase, which destroys it, makes it the patch disk)"
            );
            warn!("patch disk {} ({}): {why}", disk.name, disk.location);
            status(disk, None, None, why)
        }
        Content::Blank if !big_enough => {
            let why = too_small(disk.size_bytes(), min_gib);
            warn!("patch disk {}: {why}; left blank", disk.name);
            status(disk, None, None, why)
        }
        Content::Blank => match format_and_mount(disk) {
            Ok(s) => s,
            Err(why) => status(disk, None, None, why.to_string()),
        },
        Content::Patch(_) => match check_and_mount(disk) {
            Ok(mut s) if !big_enough => {
                s.state = format!("{}, but {}", s.state, too_small(disk.size_bytes(), min_gib));
                s
            }
            Ok(s) => s,
            Err(why) => status(disk, Some("ext4".into()), None, why.to_string()),
        },
    }
}

/// The control API's format: refuses to erase what is on the disk unless
/// `erase`, and refuses a disk in use.
pub fn format(disk: &Candidate, erase: bool, mounted: bool) -> Result<DiskStatus, PatchDiskError> {
    let device = || disk.name.clone();
    if mounted {
        return Err(PatchDiskError::InUse { device: device() });
    }
    let found = content::read(&disk.dev_path()).map_err(|source| PatchDiskError::Read {
        device: device(),
        source,
    })?;
    match found {
        Content::Blank => {}
        Content::Patch(_) if !erase => return Err(PatchDiskError::HoldsPatch { device: device() }),
        Content::Foreign(what) if !erase => {
            return Err(PatchDiskError::HoldsOther {
                device: device(),
                what,
            })
        }
        Content::Patch(_) | Content::Foreign(_) => {
            warn!("patch disk {}: erasing it as requested", disk.name)
        }
    }
    format_and_mount(disk)
}

fn format_and_mount(disk: &Candidate) -> Result<DiskStatus, PatchDiskError> {
    let dev = disk.dev_path();
    info!(
        "patch disk {} ({}, {}): formatting ext4",
        disk.name,
        disk.location,
        gib(disk.size_bytes())
    );
    let dev_s = dev.to_string_lossy();
    // -F: a whole disk, not a partition, is what we format, on purpose.
    // Lazy table initialisation makes a 250 GiB disk ready in seconds.
    let code = statefs::run(
        MKE2FS,
        &[
            "-F",
            "-q",
            "-t",
            "ext4",
            "-L",
            PATCH_LABEL,
            "-m",
            "0",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
            &dev_s,
        ],
    )?;
    if code != 0 {
        let why = PatchDiskError::Mkfs { code };
        warn!("patch disk {}: {why}", disk.name);
        return Err(why);
    }
    check_and_mount(disk).map(|mut s| {
        s.state = format!("formatted; {}", s.state);
        s
    })
}

fn check_and_mount(disk: &Candidate) -> Result<DiskStatus, PatchDiskError> {
    let dev = disk.dev_path();
    let fail = |why: PatchDiskError| {
        warn!("patch disk {}: {why}", disk.name);
        why
    };
    match statefs::check(&dev).map_err(|e| fail(e.into()))? {
        FsckOutcome::Corrected => warn!("patch disk {}: checked, errors corrected", disk.name),
        _ => info!("patch disk {}: checked, clean", disk.name),
    }
    std::fs::create_dir_all(MOUNT_POINT).map_err(|e| fail(PatchDiskError::CreateMountPoint(e)))?;
    mount(
        Some(&dev),
        MOUNT_POINT,
        Some("ext4"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .map_err(|e| fail(PatchDiskError::Mount(e)))?;
    let mut state = format!("mounted at {MOUNT_POINT}");
    if let Ok(Some(sb)) = statefs::read_superblock(&dev) {
        if statefs::needs_resize(&sb, disk.size_bytes()) {
            let before = sb.size_bytes();
            match statefs::resize(&dev) {
                Ok(()) => {
                    let after = statefs::read_superblock(&dev)
                        .ok()
                        .flatten()
                        .map_or(0, |s| s.size_bytes());
                    info!(
                        "patch disk {}: filesystem grown from {} to {} (the disk was extended)",
                        disk.name,
                        gib(before),
                        gib(after)
                    );
                    state = format!("grown from {} to {}; {state}", gib(before), gib(after));
                }
                Err(e) => warn!("patch disk {}: {e}", disk.name),
            }
        }
    }
    info!("patch disk {}: {state}", disk.name);
    Ok(status(
        disk,
        Some("ext4".into()),
        Some(MOUNT_POINT.into()),
        state,
    ))
}

/// Whether patch mode may be on with this disk status, and why not.
pub fn ready(disk: Option<&DiskStatus>, min_gib: u32) -> Result<(), NotReady> {
    let Some(d) = disk else {
        return Err(NotReady::NoDisk { min_gib });
    };
    if d.size_bytes < u64::from(min_gib) * GIB {
        return Err(NotReady::TooSmall {
            device: d.device.clone(),
            size_bytes: d.size_bytes,
            min_gib,
        });
    }
    if d.mount.is_none() {
        return Err(NotReady::NotUsable {
            device: d.device.clone(),
            state: d.state.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(size_gib: u64, mount: bool) -> DiskStatus {
        DiskStatus {
            role: "patch".into(),
            device: "vdb".into(),
            size_bytes: size_gib * GIB,
            mount: mount.then(|| MOUNT_POINT.into()),
            state: if mount {
                "mounted".into()
            } else {
                "holds an XFS filesystem: not formatted".into()
            },
            ..Default::default()
        }
    }

    #[test]
    fn patch_mode_needs_a_mounted_disk_of_the_minimum_size() {
        assert!(ready(Some(&disk(2, true)), 1).is_ok());
        assert_eq!(
            ready(Some(&disk(1, true)), 2).unwrap_err().to_string(),
            "the patch disk vdb is too small: 1.0 GiB; patch mode needs at least 2 GiB (patch.min_disk_gib)"
        );
        assert_eq!(
            ready(Some(&disk(2, false)), 1).unwrap_err().to_string(),
            "the patch disk vdb is not usable: holds an XFS filesystem: not formatted"
        );
        assert!(ready(None, 250)
            .unwrap_err()
            .to_string()
            .starts_with("no patch disk"));
    }

    /// The minimum is in GiB: hypervisors (vSphere, Hyper-V, Proxmox) make
    /// a "250 GB" disk 250 GiB, so the disk QGS's guide asks for passes the
    /// default, while 250 decimal GB (232.8 GiB) is short of it.
    #[test]
    fn the_default_minimum_is_250_gib_as_a_hypervisor_makes_a_250_gb_disk() {
        let min = gateway_config::Config::default().patch.min_disk_gib;
        assert_eq!(min, 250);
        let sized = |bytes: u64| DiskStatus {
            size_bytes: bytes,
            ..disk(0, true)
        };
        assert!(ready(Some(&sized(250 * GIB)), min).is_ok());
        assert_eq!(
            ready(Some(&sized(250_000_000_000)), min)
                .unwrap_err()
                .to_string(),
            "the patch disk vdb is too small: 232.8 GiB; patch mode needs at least 250 GiB (patch.min_disk_gib)"
        );
        assert!(ready(Some(&sized(250 * GIB - 512)), min).is_err());
    }
}

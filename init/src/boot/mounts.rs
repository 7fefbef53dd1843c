//! The early mounts: what PID 1 mounts before anything else runs.
//!
//! The table is data ([`early_mounts`]); [`apply`] carries it out and reports
//! per mount, so one failure (say cgroup2 missing from a kernel) is logged and
//! the rest still happen. /dev is usually already there (the kernel mounts
//! devtmpfs itself, CONFIG_DEVTMPFS_MOUNT): that counts as done.

use std::path::Path;

use nix::mount::{mount, MsFlags};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: &'static str,
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {fstype} on {target}: {source}")]
    Mount {
        fstype: String,
        target: String,
        source: nix::Error,
    },
    #[error("create mount point {target}: {source}")]
    MountPoint {
        target: String,
        source: std::io::Error,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum MountOutcome {
    Mounted,
    AlreadyMounted,
}

/// The mounts of the boot sequence, in order.
pub fn early_mounts() -> Vec<MountSpec> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    vec![
        MountSpec {
            source: "proc",
            target: "/proc",
            fstype: "proc",
            flags: nosuid_nodev_noexec,
            data: None,
        },
        MountSpec {
            source: "sysfs",
            target: "/sys",
            fstype: "sysfs",
            flags: nosuid_nodev_noexec,
            data: None,
        },
        MountSpec {
            source: "devtmpfs",
            target: "/dev",
            fstype: "devtmpfs",
            flags: MsFlags::MS_NOSUID,
            data: Some("mode=0755"),
        },
        MountSpec {
            source: "devpts",
            target: "/dev/pts",
            fstype: "devpts",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            data: Some("gid=5,mode=0620,ptmxmode=0666"),
        },
        MountSpec {
            source: "tmpfs",
            target: "/dev/shm",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: Some("mode=1777"),
        },
        MountSpec {
            source: "tmpfs",
            target: "/run",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: Some("mode=0755,size=20%"),
        },
        MountSpec {
            source: "tmpfs",
            target: "/tmp",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: Some("mode=1777,size=20%"),
        },
        MountSpec {
            source: "cgroup2",
            target: "/sys/fs/cgroup",
            fstype: "cgroup2",
            flags: nosuid_nodev_noexec,
            data: Some("nsdelegate"),
        },
    ]
}

/// Whether `target` is a mount point in `mountinfo` (the text of
/// /proc/self/mountinfo; field 5 is the mount point).
pub fn is_mounted(mountinfo: &str, target: &str) -> bool {
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .any(|mp| mp == target)
}

/// Whether `target` is a mount point now, by this process's mountinfo.
pub fn is_mount_point(target: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    target.to_str().is_some_and(|t| is_mounted(&mountinfo, t))
}

pub fn apply(spec: &MountSpec) -> Result<MountOutcome, MountError> {
    // /proc may not be there yet for the first mount: then nothing is mounted.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if is_mounted(&mountinfo, spec.target) {
        return Ok(MountOutcome::AlreadyMounted);
    }
    if !Path::new(spec.target).exists() {
        // Mount points under /dev and /sys live on in-memory filesystems;
        // those on the read-only root are in the image already.
        std::fs::create_dir_all(spec.target).map_err(|source| MountError::MountPoint {
            target: spec.target.to_owned(),
            source,
        })?;
    }
    mount(
        Some(spec.source),
        spec.target,
        Some(spec.fstype),
        spec.flags,
        spec.data,
    )
    .map_err(|source| MountError::Mount {
        fstype: spec.fstype.to_owned(),
        target: spec.target.to_owned(),
        source,
    })?;
    Ok(MountOutcome::Mounted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:2 / / ro,relatime shared:1 - ext4 /dev/root ro
23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs devtmpfs rw,size=10240k
24 22 0:21 / /proc rw,nosuid,nodev,noexec shared:3 - proc proc rw
";

    #[test]
    fn detects_mount_points_exactly() {
        assert!(is_mounted(MOUNTINFO, "/dev"));
        assert!(is_mounted(MOUNTINFO, "/proc"));
        assert!(!is_mounted(MOUNTINFO, "/dev/pts"));
        assert!(!is_mounted(MOUNTINFO, "/sys"));
    }

    #[test]
    fn proc_first_and_pts_after_dev() {
        let m = early_mounts();
        assert_eq!(m[0].target, "/proc");
        let dev = m.iter().position(|s| s.target == "/dev").unwrap();
        let pts = m.iter().position(|s| s.target == "/dev/pts").unwrap();
        let sys = m.iter().position(|s| s.target == "/sys").unwrap();
        let cg = m.iter().position(|s| s.target == "/sys/fs/cgroup").unwrap();
        assert!(dev < pts && sys < cg);
    }
}

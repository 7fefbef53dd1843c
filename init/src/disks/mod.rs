//! The VM's disks: the boot disk (the one holding the root filesystem), the
//! patch disk (the first other disk in hardware order, see [`discover`])
//! and any further disk, which is ignored and reported (QGS uses one
//! secondary disk too). [`blockdev`] reads them from sysfs, [`content`]
//! tells what a disk holds (with [`ext4`]'s superblock), [`patch`] formats,
//! checks, mounts and grows the patch disk. The state partition on the boot
//! disk is the boot's ([`crate::boot::statefs`]).

pub mod blockdev;
pub mod content;
pub mod discover;
pub mod ext4;
pub mod patch;

use gateway_control::protocol::DiskStatus;
use tracing::{info, warn};

use blockdev::{device_of, Sysfs};
use discover::Candidate;

/// What the boot found and did.
#[derive(Debug, Default)]
pub struct Found {
    pub statuses: Vec<DiskStatus>,
    /// The disk chosen as patch disk, for a later format request.
    pub patch: Option<Candidate>,
}

pub fn prepare(sysfs: &Sysfs, min_gib: u32) -> Found {
    let mut found = Found::default();
    let boot = device_of("/")
        .ok()
        .and_then(|(major, minor)| sysfs.disk_of(major, minor).ok());
    let boot_name = boot.as_ref().map(|d| d.name.clone()).unwrap_or_default();
    if let Some(d) = &boot {
        found.statuses.push(DiskStatus {
            role: "boot".into(),
            device: d.name.clone(),
            location: String::new(),
            size_bytes: d.sectors * 512,
            filesystem: Some("ext4".into()),
            mount: Some("/".into()),
            state: "boot disk".into(),
        });
    }
    let mut others = sysfs.other_disks(&boot_name).into_iter();
    match others.next() {
        Some(disk) => {
            info!(
                "patch disk: {} at {} ({})",
                disk.name,
                disk.location,
                patch::gib(disk.size_bytes())
            );
            found.statuses.push(patch::prepare(&disk, min_gib));
            found.patch = Some(disk);
        }
        None => info!("patch disk: none attached"),
    }
    for extra in others {
        let chosen = found.patch.as_ref().map_or("", |d| d.name.as_str());
        warn!(
            "disk {} at {}: ignored, the appliance uses one patch disk ({chosen})",
            extra.name, extra.location
        );
        found.statuses.push(DiskStatus {
            role: "ignored".into(),
            device: extra.name.clone(),
            location: extra.location.clone(),
            size_bytes: extra.size_bytes(),
            filesystem: None,
            mount: None,
            state: format!("ignored: the appliance uses one patch disk ({chosen})"),
        });
    }
    found
}

/// The Info screen's note for each disk beyond the patch disk (QGS uses
/// one secondary disk too, and says when it finds more), after the
/// requirements warnings and in their manner.
pub fn ignored_warnings(disks: &[DiskStatus]) -> Vec<String> {
    const ORDINALS: [&str; 4] = ["third", "fourth", "fifth", "sixth"];
    let patch = disks
        .iter()
        .find(|d| d.role == "patch")
        .map_or("none", |d| d.device.as_str());
    disks
        .iter()
        .filter(|d| d.role == "ignored")
        .enumerate()
        .map(|(i, d)| {
            let nth = ORDINALS.get(i).copied().unwrap_or("further");
            format!(
                "WARNING : Found a {nth} disk {}. The appliance uses one patch disk ({patch}): the {nth} disk is ignored",
                d.device
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(role: &str, device: &str) -> DiskStatus {
        DiskStatus {
            role: role.into(),
            device: device.into(),
            size_bytes: 2 << 30,
            ..Default::default()
        }
    }

    #[test]
    fn each_disk_beyond_the_patch_disk_gets_a_note_for_the_info_screen() {
        assert!(ignored_warnings(&[disk("boot", "vda"), disk("patch", "vdb")]).is_empty());
        assert_eq!(
            ignored_warnings(&[
                disk("boot", "sda"),
                disk("patch", "sdb"),
                disk("ignored", "sdc"),
                disk("ignored", "sdd"),
            ]),
            [
                "WARNING : Found a third disk sdc. The appliance uses one patch disk (sdb): the third disk is ignored",
                "WARNING : Found a fourth disk sdd. The appliance uses one patch disk (sdb): the fourth disk is ignored",
            ]
        );
    }
}

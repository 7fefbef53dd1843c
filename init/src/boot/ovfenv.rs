//! The OVF environment: the first-boot settings an administrator typed into
//! vSphere's deploy wizard. The OVA's descriptor asks for the `iso`
//! transport (`ovf:transport="iso"`), so vSphere attaches a small ISO 9660
//! CD-ROM holding `ovf-env.xml` (DSP0243 section 11):
//!
//! ```xml
//! <Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"
//!              xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" ...>
//!   <PropertySection>
//!     <Property oe:key="gateway.net.mode" oe:value="static"/>
//!   </PropertySection>
//! </Environment>
//! ```
//!
//! The property keys are the kernel command line seed's (`gateway.<key>`),
//! so [`parse`] returns the same `(key, value)` pairs the seed takes. This
//! module only reads: [`read`] finds the CD, mounts it read-only under /run,
//! reads the file and unmounts; what to do with the pairs (the seed, with
//! the kernel command line taking precedence) is the boot sequence's call.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// The OVF environment namespace (`oe:`).
pub const OE_NS: &str = "http://schemas.dmtf.org/ovf/environment/1";
/// The prefix of the appliance's properties, as on the kernel command line.
pub const PREFIX: &str = "gateway.";
/// The file's name at the root of the CD.
pub const FILE_NAME: &str = "ovf-env.xml";
/// ovf-env.xml is a few KiB; anything much larger is not one.
const MAX_SIZE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OvfEnvError {
    #[error("list {path}: {source}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("create mount point {path}: {source}")]
    MountPoint {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount {dev} (iso9660, read-only) on {path}: {source}")]
    Mount {
        dev: PathBuf,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The `gateway.*` properties of an OVF environment document, as
/// `(key without "gateway.", value)` pairs in document order. Properties of
/// other products, empty values and a document that is not XML give
/// nothing (logged), never an error: the boot goes on without them.
pub fn parse(xml: &str) -> Pairs {
    let doc = match roxmltree::Document::parse(xml) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "ovf-env.xml is not well-formed XML; ignored");
            return Vec::new();
        }
    };
    let root = doc.root_element();
    if !root.has_tag_name((OE_NS, "Environment")) {
        tracing::warn!(
            root = root.tag_name().name(),
            "ovf-env.xml has no OVF Environment root; ignored"
        );
        return Vec::new();
    }
    // Only the appliance's own PropertySection: an Entity element holds the
    // environment of other virtual systems of a vApp.
    root.children()
        .filter(|n| n.has_tag_name((OE_NS, "PropertySection")))
        .flat_map(|s| s.children())
        .filter(|n| n.has_tag_name((OE_NS, "Property")))
        .filter_map(|p| {
            let key = p.attribute((OE_NS, "key"))?.strip_prefix(PREFIX)?;
            let value = p.attribute((OE_NS, "value"))?.trim();
            (!key.is_empty() && !value.is_empty()).then(|| (key.to_string(), value.to_string()))
        })
        .collect()
}

/// Whether `sector16` (the 2 KiB at byte 32768 of a device) is an ISO 9660
/// volume descriptor: type byte, then the standard identifier "CD001".
pub fn is_iso9660(sector16: &[u8]) -> bool {
    sector16.len() >= 7 && sector16[1..6] == *b"CD001" && sector16[6] == 1
}

/// The CD-ROM drives sysfs shows under `sys_block` (normally /sys/block):
/// SCSI type 5 (`device/type`, what sr devices are, whether on IDE, SATA
/// or SCSI), sorted by name.
pub fn cdrom_devices(sys_block: &Path) -> Result<Vec<String>, OvfEnvError> {
    let entries = std::fs::read_dir(sys_block).map_err(|source| OvfEnvError::List {
        path: sys_block.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let kind = std::fs::read_to_string(sys_block.join(name).join("device/type"));
            matches!(kind.as_deref().map(str::trim), Ok("5")) || name.starts_with("sr")
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Reads the OVF environment from the first CD-ROM that carries one; empty
/// when there is none (every VM not deployed through vSphere's iso
/// transport). Failures are logged and give an empty list.
pub fn read() -> Pairs {
    match read_from(
        Path::new("/sys/block"),
        Path::new("/dev"),
        Path::new("/run"),
    ) {
        Ok(Some((dev, pairs))) => {
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            tracing::info!(dev = %dev.display(), ?keys, "OVF environment read");
            pairs
        }
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "OVF environment not read");
            Vec::new()
        }
    }
}

/// Configuration pairs: `(key, value)`, the key without `gateway.`.
pub type Pairs = Vec<(String, String)>;

/// [`read`] with its directories given: the device found and its pairs.
pub fn read_from(
    sys_block: &Path,
    dev_dir: &Path,
    run_dir: &Path,
) -> Result<Option<(PathBuf, Pairs)>, OvfEnvError> {
    for name in cdrom_devices(sys_block)? {
        let dev = dev_dir.join(&name);
        // An empty drive fails to open (no medium): not an error.
        let Ok(f) = File::open(&dev) else { continue };
        let mut sector = [0u8; 2048];
        if f.read_exact_at(&mut sector, 16 * 2048).is_err() || !is_iso9660(&sector) {
            continue;
        }
        drop(f);
        if let Some(xml) = read_file_on(&dev, run_dir)? {
            return Ok(Some((dev, parse(&xml))));
        }
    }
    Ok(None)
}

/// Mounts `dev` read-only on a fresh directory under `run_dir`, reads
/// ovf-env.xml if it is there, unmounts and removes the directory.
fn read_file_on(dev: &Path, run_dir: &Path) -> Result<Option<String>, OvfEnvError> {
    let dir = run_dir.join(format!("ovfenv.{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| OvfEnvError::MountPoint {
        path: dir.clone(),
        source,
    })?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(source) = mount(Some(dev), &dir, Some("iso9660"), flags, None::<&str>) {
        let _ = std::fs::remove_dir(&dir);
        return Err(OvfEnvError::Mount {
            dev: dev.to_path_buf(),
            path: dir,
            source,
        });
    }
    // Rock Ridge and Joliet keep the name; a plain ISO 9660 level 1 image
    // cannot hold '-', and Linux shows its names in lower case.
    let mut result = Ok(None);
    for name in [FILE_NAME, "ovf_env.xml"] {
        let path = dir.join(name);
        match File::open(&path) {
            Ok(f) => {
                let mut text = String::new();
                result = f
                    .take(MAX_SIZE)
                    .read_to_string(&mut text)
                    .map(|_| Some(text))
                    .map_err(|source| OvfEnvError::Read { path, source });
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                result = Err(OvfEnvError::Read { path, source });
                break;
            }
        }
    }
    if let Err(e) = umount2(&dir, MntFlags::MNT_DETACH) {
        tracing::warn!(path = %dir.display(), error = %e, "unmount of the OVF environment CD failed");
    }
    let _ = std::fs::remove_dir(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What vSphere 8 writes (trimmed of the platform section's values).
    const VSPHERE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Environment
     xmlns="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:ve="http://www.vmware.com/schema/ovfenv"
     oe:id=""
     ve:vCenterId="vm-1042">
   <PlatformSection>
      <Kind>VMware ESXi</Kind>
      <Version>8.0.2</Version>
      <Vendor>VMware, Inc.</Vendor>
      <Locale>en</Locale>
   </PlatformSection>
   <PropertySection>
         <Property oe:key="gateway.dns.search" oe:value=""/>
         <Property oe:key="gateway.dns.servers" oe:value="10.0.0.53,10.0.1.53"/>
         <Property oe:key="gateway.net.address" oe:value="10.0.0.20/24"/>
         <Property oe:key="gateway.net.gateway" oe:value="10.0.0.1"/>
         <Property oe:key="gateway.net.mode" oe:value="static"/>
         <Property oe:key="gateway.ntp.servers" oe:value=" ntp.corp.example.com "/>
         <Property oe:key="vami.hostname" oe:value="other-product"/>
   </PropertySection>
   <ve:EthernetAdapterSection>
      <ve:Adapter ve:mac="00:50:56:8a:12:34" ve:network="VM Network" ve:unitNumber="7"/>
   </ve:EthernetAdapterSection>
   <Entity oe:id="other-vm">
      <PropertySection>
         <Property oe:key="gateway.net.mode" oe:value="dhcp"/>
      </PropertySection>
   </Entity>
</Environment>
"#;

    #[test]
    fn parses_the_gateway_properties() {
        assert_eq!(
            parse(VSPHERE),
            vec![
                ("dns.servers".to_string(), "10.0.0.53,10.0.1.53".to_string()),
                ("net.address".into(), "10.0.0.20/24".into()),
                ("net.gateway".into(), "10.0.0.1".into()),
                ("net.mode".into(), "static".into()),
                ("ntp.servers".into(), "ntp.corp.example.com".into()),
            ]
        );
    }

    #[test]
    fn every_key_is_a_configuration_key() {
        for (key, _) in parse(VSPHERE) {
            assert!(gateway_config::key_info(&key).is_some(), "{key}");
        }
    }

    #[test]
    fn nothing_from_what_is_not_an_environment() {
        assert!(parse("").is_empty());
        assert!(parse("<Environment><PropertySection>").is_empty());
        // The right names in the wrong namespace.
        assert!(parse(
            r#"<Environment xmlns="urn:x" xmlns:oe="urn:x"><PropertySection><Property oe:key="gateway.net.mode" oe:value="static"/></PropertySection></Environment>"#
        )
        .is_empty());
        // The attributes must be oe: ones.
        assert!(parse(
            r#"<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"><PropertySection><Property key="gateway.net.mode" value="static"/></PropertySection></Environment>"#
        )
        .is_empty());
    }

    #[test]
    fn iso9660_signature() {
        let mut s = [0u8; 2048];
        assert!(!is_iso9660(&s));
        s[0] = 1;
        s[1..6].copy_from_slice(b"CD001");
        s[6] = 1;
        assert!(is_iso9660(&s));
        s[2] = b'X';
        assert!(!is_iso9660(&s));
    }

    #[test]
    fn finds_cd_drives_in_sysfs() {
        let t = tempfile::tempdir().unwrap();
        for (name, kind) in [
            ("sda", Some("0")),
            ("sr0", Some("5")),
            ("vda", None),
            ("sr1", Some("5")),
        ] {
            let d = t.path().join(name).join("device");
            std::fs::create_dir_all(&d).unwrap();
            if let Some(k) = kind {
                std::fs::write(d.join("type"), format!("{k}\n")).unwrap();
            }
        }
        assert_eq!(cdrom_devices(t.path()).unwrap(), ["sr0", "sr1"]);
    }

    #[test]
    fn no_cd_is_no_environment() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys");
        std::fs::create_dir_all(sys.join("sr0/device")).unwrap();
        std::fs::write(sys.join("sr0/device/type"), "5\n").unwrap();
        // /dev/sr0 missing (no medium, or not yet created): skipped.
        let got = read_from(&sys, &t.path().join("dev"), t.path()).unwrap();
        assert_eq!(got, None);
    }
}

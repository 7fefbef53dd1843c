//! The hypervisor images made from the raw disk, all named
//! `gateway-<version>.*` in one output folder:
//!
//! | file | for | made by |
//! |---|---|---|
//! | `.ova` | vSphere, Workstation, VirtualBox | this crate: descriptor, stream-optimized VMDK, manifest in a ustar archive |
//! | `.ovf`, `-disk1.vmdk`, `.mf` | the same package unpacked (QGS ships one too) | this crate |
//! | `.vmdk` | VMware users who create the VM themselves | `qemu-img` (monolithicSparse, lsilogic) |
//! | `.vhd` | Hyper-V Generation 1 (IDE) and 2 | `qemu-img` (dynamic, `force_size`), footer geometry set per the spec |
//! | `.qcow2` | KVM, Proxmox | `qemu-img` (compressed clusters) |
//!
//! Every file is checked by [`crate::verify`] right after it is written, and
//! a `SHA256SUMS` file lists them all.

use std::fs::File;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::manifest::{self, Entry};
use crate::ovf::{self, OvfSpec};
use crate::tool::{self, ToolError};
use crate::verify::{self, VerifyError};
use crate::vmdk::{self, VmdkError};

/// What to build.
#[derive(Debug, Clone)]
pub struct ImagesSpec {
    /// The raw disk image (`gateway-image disk`).
    pub raw: PathBuf,
    /// The output folder (created if missing).
    pub out_dir: PathBuf,
    /// The appliance version, in every file name.
    pub version: String,
}

#[derive(Debug, Error)]
pub enum ImagesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: writing the stream-optimized VMDK: {source}")]
    Vmdk { path: PathBuf, source: VmdkError },
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("{path} failed its check right after it was written: {source}")]
    Verify { path: PathBuf, source: VerifyError },
}

/// One file written, with its size.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub size: u64,
    pub summary: String,
}

/// The file names of a version's images.
#[derive(Debug, Clone)]
pub struct Names {
    pub base: String,
}

impl Names {
    pub fn new(version: &str) -> Names {
        Names {
            base: format!("gateway-{version}"),
        }
    }
    pub fn ova(&self) -> String {
        format!("{}.ova", self.base)
    }
    pub fn ovf(&self) -> String {
        format!("{}.ovf", self.base)
    }
    pub fn mf(&self) -> String {
        format!("{}.mf", self.base)
    }
    /// The stream-optimized disk of the OVF package.
    pub fn ovf_disk(&self) -> String {
        format!("{}-disk1.vmdk", self.base)
    }
    /// The standalone (monolithicSparse) VMDK.
    pub fn vmdk(&self) -> String {
        format!("{}.vmdk", self.base)
    }
    pub fn vhd(&self) -> String {
        format!("{}.vhd", self.base)
    }
    pub fn qcow2(&self) -> String {
        format!("{}.qcow2", self.base)
    }
}

/// Builds every image into `spec.out_dir`, checking each.
pub fn build_images(spec: &ImagesSpec) -> Result<Vec<Artifact>, ImagesError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImagesError::Io { path, source }
    };
    std::fs::create_dir_all(&spec.out_dir).map_err(io(&spec.out_dir))?;
    let names = Names::new(&spec.version);
    let out = |name: &str| spec.out_dir.join(name);
    let raw = File::open(&spec.raw).map_err(io(&spec.raw))?;

    // The OVF package: stream-optimized disk, descriptor, manifest.
    let disk1 = out(&names.ovf_disk());
    crate::progress(&format!(
        "writing {} (stream-optimized VMDK)",
        disk1.display()
    ));
    let tmp = crate::tmp_path(&disk1);
    let guard = crate::RemoveOnDrop(tmp.clone());
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    let info = vmdk::write_stream_optimized(&raw, &mut f, &names.ovf_disk(), "lsilogic").map_err(
        |source| ImagesError::Vmdk {
            path: disk1.clone(),
            source,
        },
    )?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &disk1).map_err(io(&disk1))?;
    guard.disarm();

    let ovf_path = out(&names.ovf());
    let descriptor = ovf::descriptor(&OvfSpec {
        name: "gateway".into(),
        product: "Gateway appliance".into(),
        vendor: "Gateway appliance project".into(),
        version: spec.version.clone(),
        disk_file: names.ovf_disk(),
        disk_file_size: info.file_size,
        capacity: info.capacity,
        populated: info.grains * vmdk::GRAIN_SECTORS * vmdk::SECTOR,
        cpus: ovf::DEFAULT_CPUS,
        memory_mib: ovf::DEFAULT_MEMORY_MIB,
    });
    std::fs::write(&ovf_path, &descriptor).map_err(io(&ovf_path))?;
    let mut entries = Vec::new();
    for name in [names.ovf(), names.ovf_disk()] {
        let p = out(&name);
        let f = File::open(&p).map_err(io(&p))?;
        let (sha256, _) = manifest::sha256_hex(std::io::BufReader::new(f)).map_err(io(&p))?;
        entries.push(Entry { name, sha256 });
    }
    let mf_path = out(&names.mf());
    std::fs::write(&mf_path, manifest::format(&entries)).map_err(io(&mf_path))?;

    let ova = out(&names.ova());
    crate::progress(&format!("writing {}", ova.display()));
    let tmp = crate::tmp_path(&ova);
    let guard = crate::RemoveOnDrop(tmp.clone());
    crate::ova::write_ova(
        &tmp,
        &[
            (&names.ovf(), &ovf_path),
            (&names.ovf_disk(), &disk1),
            (&names.mf(), &mf_path),
        ],
    )
    .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &ova).map_err(io(&ova))?;
    guard.disarm();

    // The single-disk formats, converted by qemu-img.
    let conversions: [(String, &[&str]); 3] = [
        (
            names.vmdk(),
            &[
                "-O",
                "vmdk",
                "-o",
                "subformat=monolithicSparse,adapter_type=lsilogic",
            ],
        ),
        // force_size: the footer's current size is the raw size exactly
        // (1 MiB aligned), not rounded down to a CHS geometry.
        (
            names.vhd(),
            &["-O", "vpc", "-o", "subformat=dynamic,force_size=on"],
        ),
        (names.qcow2(), &["-O", "qcow2", "-c", "-o", "compat=1.1"]),
    ];
    for (name, args) in conversions {
        let path = out(&name);
        crate::progress(&format!("writing {} (qemu-img)", path.display()));
        let tmp = crate::tmp_path(&path);
        let guard = crate::RemoveOnDrop(tmp.clone());
        tool::run(
            tool::command("qemu-img")
                .args(["convert", "-q", "-f", "raw"])
                .args(args)
                .arg(&spec.raw)
                .arg(&tmp),
            None,
        )?;
        if name == names.vhd() {
            crate::vhd::set_spec_geometry(&tmp).map_err(|source| ImagesError::Verify {
                path: path.clone(),
                source: source.into(),
            })?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        guard.disarm();
    }

    let mut artifacts = Vec::new();
    let mut sums = Vec::new();
    for name in [
        names.ova(),
        names.ovf(),
        names.ovf_disk(),
        names.mf(),
        names.vmdk(),
        names.vhd(),
        names.qcow2(),
    ] {
        let path = out(&name);
        let summary = verify::verify(&path).map_err(|source| ImagesError::Verify {
            path: path.clone(),
            source,
        })?;
        let f = File::open(&path).map_err(io(&path))?;
        let (sha256, size) = manifest::sha256_hex(std::io::BufReader::new(f)).map_err(io(&path))?;
        sums.push(format!("{sha256}  {name}\n"));
        artifacts.push(Artifact {
            path,
            size,
            summary,
        });
    }
    let sums_path = out("SHA256SUMS");
    std::fs::write(&sums_path, sums.concat()).map_err(io(&sums_path))?;
    Ok(artifacts)
}

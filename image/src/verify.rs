//! `gateway-image verify <file>`: checks one artifact by its kind (its
//! extension), and says which check failed. A success returns a one-line
//! summary of what was found.
//!
//! | file | checks |
//! |---|---|
//! | `.ova` | ustar members; `.ovf` first; files in References order; manifest after the descriptor or last; every SHA-256 digest; OVF well-formed and its references resolved; each disk's VMDK structure; Disk capacity = VMDK capacity; File size = member size; stream-optimized disk |
//! | `.ovf` | the same for the unpacked package: its files and `<name>.mf` beside it |
//! | `.mf` | every digest against the files beside it |
//! | `.vmdk` | sparse extent header, descriptor (createType, extent size = capacity, adapter), footer and end-of-stream marker when stream-optimized, every grain table entry, every compressed grain inflates |
//! | `.vhd` | footer cookie and checksum, version, disk type, current size 1 MiB aligned, CHS geometry per the spec; dynamic: the footer copy, the dynamic header and its checksum, the BAT |
//! | `.qcow2` | magic, version, no backing file, not encrypted, not dirty, tables inside the file |
//! | `.raw`, `.img` | the GPT (both headers, CRCs, entries) |

use std::path::Path;

use thiserror::Error;

use crate::manifest;
use crate::ova::{self, PackageError};
use crate::qcow2::{self, Qcow2Error};
use crate::size::show_size;
use crate::vhd::{self, VhdError, DISK_DYNAMIC};
use crate::vmdk::{self, VmdkError};
use crate::InspectError;

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Vmdk(#[from] VmdkError),
    #[error(transparent)]
    Vhd(#[from] VhdError),
    #[error(transparent)]
    Qcow2(#[from] Qcow2Error),
    #[error(transparent)]
    Gpt(#[from] InspectError),
    #[error("{path}: unknown kind of file (expected .ova, .ovf, .mf, .vmdk, .vhd, .qcow2, .raw or .img)")]
    UnknownKind { path: String },
}

/// Checks `path`; returns a summary line.
pub fn verify(path: &Path) -> Result<String, VerifyError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "ova" => {
            let p = ova::check_ova(path)?;
            Ok(package_summary("OVA", &p))
        }
        "ovf" => {
            let p = ova::check_ovf_dir(path)?;
            Ok(package_summary("OVF package", &p))
        }
        "mf" => verify_manifest(path),
        "vmdk" => {
            let v = vmdk::check(path)?;
            Ok(format!(
                "VMDK {}, {} virtual, {} grains of data, adapter {}",
                v.descriptor.create_type,
                show_size(v.capacity),
                v.grains,
                v.descriptor.adapter_type.unwrap_or_default()
            ))
        }
        "vhd" => {
            let v = vhd::check(path)?;
            let g = v.footer.geometry;
            Ok(format!(
                "VHD {}, {} virtual, CHS {}/{}/{}, {} blocks of {}",
                if v.footer.disk_type == DISK_DYNAMIC {
                    "dynamic"
                } else {
                    "fixed"
                },
                show_size(v.footer.current_size),
                g.cylinders,
                g.heads,
                g.sectors,
                v.blocks,
                show_size(v.block_size)
            ))
        }
        "qcow2" => {
            let q = qcow2::check(path)?;
            Ok(format!(
                "qcow2 version {}, {} virtual, {}-byte clusters",
                q.version,
                show_size(q.size),
                1u64 << q.cluster_bits
            ))
        }
        "raw" | "img" => {
            let parts = crate::partitions(path)?;
            Ok(format!("raw disk, GPT with {} partitions", parts.len()))
        }
        _ => Err(VerifyError::UnknownKind {
            path: path.display().to_string(),
        }),
    }
}

fn package_summary(kind: &str, p: &ova::PackageInfo) -> String {
    let members: Vec<&str> = p.members.iter().map(|m| m.name.as_str()).collect();
    let disks: Vec<String> = p
        .disks
        .iter()
        .map(|(n, d)| {
            format!(
                "{n} {} ({})",
                d.descriptor.create_type,
                show_size(d.capacity)
            )
        })
        .collect();
    format!(
        "{kind} [{}], {} vCPU, {} MiB, {}, {} properties, disks: {}",
        members.join(", "),
        p.ovf.cpus,
        p.ovf.memory_mib,
        p.ovf.hardware_family,
        p.ovf.properties.len(),
        disks.join(", ")
    )
}

fn verify_manifest(path: &Path) -> Result<String, VerifyError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| PackageError::Io { path: p, source }
    };
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let entries = manifest::parse(&text).map_err(PackageError::from)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for e in &entries {
        let p = dir.join(&e.name);
        let f = std::fs::File::open(&p).map_err(io(&p))?;
        let (actual, _) = manifest::sha256_hex(std::io::BufReader::new(f)).map_err(io(&p))?;
        if actual != e.sha256 {
            return Err(PackageError::Digest {
                name: e.name.clone(),
                expected: e.sha256.clone(),
                actual,
            }
            .into());
        }
    }
    Ok(format!("manifest, {} digests match", entries.len()))
}

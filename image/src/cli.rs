//! The `gateway-image` command line: `rootfs`, `disk`, `images`, `verify`
//! and `inspect`. Parses
//! arguments, calls the library, prints results; errors go to stderr as
//! `gateway-image: <message>` with exit status 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::inspect::{self, Filesystem};
use crate::layout::{self, MIB};
use crate::{disk, images, rootfs, size, verify};

#[derive(Debug, Parser)]
#[command(
    name = "gateway-image",
    version,
    about = "Build and inspect the gateway appliance disk image"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the root filesystem image (ext4) from PID 1 and Debian packages.
    Rootfs {
        /// The PID 1 binary, installed as /sbin/init.
        #[arg(long)]
        init: PathBuf,
        /// Another program to install in /usr/bin (repeatable).
        #[arg(long = "program")]
        programs: Vec<PathBuf>,
        /// Directory of .deb files (libc6, e2fsprogs and its libraries).
        #[arg(long)]
        debs: PathBuf,
        /// The ext4 image to write.
        #[arg(long)]
        out: PathBuf,
        /// Appliance version for /etc/os-release.
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
        /// The support team's age public key file (diagnostics reports are
        /// encrypted to it).
        #[arg(long)]
        support_recipient: Option<PathBuf>,
    },
    /// Build the bootable raw disk image (GPT, BIOS and UEFI).
    Disk {
        /// The kernel bzImage.
        #[arg(long)]
        kernel: PathBuf,
        /// The root filesystem image from `rootfs`.
        #[arg(long)]
        root: PathBuf,
        /// The raw disk image to write.
        #[arg(long)]
        out: PathBuf,
        /// Virtual disk size: bytes, or with a unit (MiB, GiB); a multiple of 1 MiB.
        #[arg(long, default_value = "40GiB", value_parser = parse_size)]
        size: u64,
        /// Also write the kernel command line (no trailing newline) to this file.
        #[arg(long)]
        cmdline_out: Option<PathBuf>,
    },
    /// Make the hypervisor images from the raw disk: OVA, OVF + VMDK, VMDK, VHD, qcow2.
    Images {
        /// The raw disk image from `disk`.
        #[arg(long)]
        raw: PathBuf,
        /// The folder to write them to.
        #[arg(long)]
        out_dir: PathBuf,
        /// Appliance version, in the file names.
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
    },
    /// Check artifacts (.ova, .ovf, .mf, .vmdk, .vhd, .qcow2, .raw): exit 1 naming the failed check.
    Verify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show a disk image's partitions, or list or print files of an ext4 partition.
    Inspect {
        /// The disk image.
        disk: PathBuf,
        /// List this directory of the partition's ext4 filesystem.
        #[arg(long, conflicts_with = "cat")]
        ls: Option<String>,
        /// Print this file of the partition's ext4 filesystem.
        #[arg(long)]
        cat: Option<String>,
        /// The partition for --ls and --cat (2 is root A, 4 is state).
        #[arg(long, default_value_t = layout::ROOT_A.number)]
        partition: u32,
    },
}

fn parse_size(text: &str) -> Result<u64, String> {
    size::parse_size(text).map_err(|e| e.to_string())
}

/// Runs the command line; the exit status is 0 on success, 1 on error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gateway-image: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Rootfs {
            init,
            programs,
            debs,
            out,
            version,
            support_recipient,
        } => {
            let spec = rootfs::RootfsSpec {
                init,
                programs,
                debs,
                out,
                version,
                support_recipient,
            };
            rootfs::build_rootfs(&spec).map_err(|e| e.to_string())?;
            Ok(())
        }
        Command::Disk {
            kernel,
            root,
            out,
            size,
            cmdline_out,
        } => disk::build_disk(&disk::DiskSpec {
            kernel,
            root,
            out,
            size,
            cmdline_out,
        })
        .map_err(|e| e.to_string()),
        Command::Images {
            raw,
            out_dir,
            version,
        } => {
            let artifacts = images::build_images(&images::ImagesSpec {
                raw,
                out_dir,
                version,
            })
            .map_err(|e| e.to_string())?;
            for a in artifacts {
                println!("{:>12}  {}  {}", a.size, a.path.display(), a.summary);
            }
            Ok(())
        }
        Command::Verify { files } => {
            let mut failed = 0;
            for f in &files {
                match verify::verify(f) {
                    Ok(summary) => println!("{}: ok: {summary}", f.display()),
                    Err(e) => {
                        eprintln!("gateway-image: {}: FAILED: {e}", f.display());
                        failed += 1;
                    }
                }
            }
            match failed {
                0 => Ok(()),
                n => Err(format!("{n} of {} files failed verification", files.len())),
            }
        }
        Command::Inspect {
            disk,
            ls,
            cat,
            partition,
        } => {
            let mut stdout = std::io::stdout().lock();
            let text = if let Some(path) = cat {
                let bytes =
                    inspect::read_file(&disk, partition, &path).map_err(|e| e.to_string())?;
                return stdout
                    .write_all(&bytes)
                    .map_err(|e| format!("cannot write to stdout: {e}"));
            } else if let Some(path) = ls {
                listing(&inspect::list_dir(&disk, partition, &path).map_err(|e| e.to_string())?)
            } else {
                table(&inspect::partitions(&disk).map_err(|e| e.to_string())?)
            };
            stdout
                .write_all(text.as_bytes())
                .map_err(|e| format!("cannot write to stdout: {e}"))
        }
    }
}

/// The partition table as aligned text.
pub fn table(parts: &[inspect::PartitionInfo]) -> String {
    let mut out = format!(
        "{:<3} {:<8} {:>10} {:>10}  {:<20} {:<36}  {}\n",
        "#", "NAME", "START MiB", "SIZE MiB", "TYPE", "PARTUUID", "FILESYSTEM"
    );
    for p in parts {
        let fs = match &p.filesystem {
            Filesystem::Ext4(i) => format!(
                "ext4 label={} blocks={} x {}",
                i.label, i.blocks_count, i.block_size
            ),
            Filesystem::Fat { bits, label } => format!("FAT{bits} label={label}"),
            Filesystem::Empty => "empty".into(),
            Filesystem::Unknown => "unknown".into(),
        };
        out.push_str(&format!(
            "{:<3} {:<8} {:>10} {:>10}  {:<20} {:<36}  {}\n",
            p.number,
            p.name,
            p.start / MIB,
            p.size / MIB,
            p.type_name,
            p.partuuid.to_string(),
            fs
        ));
    }
    out
}

/// A directory listing like `ls -ln`.
pub fn listing(entries: &[inspect::DirEntryInfo]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&format!(
            "{} {:>5} {:>5} {:>10} {}",
            inspect::mode_string(e.mode),
            e.uid,
            e.gid,
            e.size,
            e.name
        ));
        if let Some(target) = &e.link {
            out.push_str(&format!(" -> {target}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn size_defaults_to_40_gib() {
        let cli = Cli::try_parse_from([
            "gateway-image",
            "disk",
            "--kernel",
            "k",
            "--root",
            "r",
            "--out",
            "o",
        ])
        .unwrap();
        match cli.command {
            Command::Disk { size, .. } => assert_eq!(size, layout::DEFAULT_DISK_SIZE),
            other => panic!("{other:?}"),
        }
    }
}

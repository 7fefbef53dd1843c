//! The hypervisor images against qemu-img, the reference reader: each image
//! made from a small raw disk reads back identical to it (`qemu-img
//! compare`), passes `verify`, and a corrupted copy fails it naming the
//! check. Booting them is the QEMU tests' job.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gateway_image::images::{build_images, ImagesSpec, Names};
use gateway_image::verify::verify;

const VERSION: &str = "7.7.7-test";

struct Built {
    _dir: tempfile::TempDir,
    raw: PathBuf,
    out: PathBuf,
}

/// A 256 MiB raw disk with data scattered over it (patterned, so that
/// compression has something to do and grains differ), built once.
fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk.raw");
        let f = File::create(&raw).unwrap();
        f.set_len(256 << 20).unwrap();
        let mut seed = 0x1234_5678u32;
        for (at, len) in [
            (0u64, 4096usize),
            (1 << 20, 300_000),
            (100 << 20, 70_000),
            ((256 << 20) - 65536, 65536),
        ] {
            let data: Vec<u8> = (0..len)
                .map(|i| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    if i % 3 == 0 {
                        (seed >> 16) as u8
                    } else {
                        b'a' + (i % 7) as u8
                    }
                })
                .collect();
            f.write_all_at(&data, at).unwrap();
        }
        let out = dir.path().join("dist");
        build_images(&ImagesSpec {
            raw: raw.clone(),
            out_dir: out.clone(),
            version: VERSION.into(),
        })
        .unwrap();
        Built {
            _dir: dir,
            raw,
            out,
        }
    })
}

fn compare(raw: &Path, image: &Path, format: &str) {
    let out = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", format])
        .arg(raw)
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} differs from the raw disk: {}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_image_reads_back_as_the_raw_disk() {
    let b = built();
    let n = Names::new(VERSION);
    compare(&b.raw, &b.out.join(n.ovf_disk()), "vmdk");
    compare(&b.raw, &b.out.join(n.vmdk()), "vmdk");
    compare(&b.raw, &b.out.join(n.vhd()), "vpc");
    compare(&b.raw, &b.out.join(n.qcow2()), "qcow2");
}

#[test]
fn qemu_img_sees_the_formats_we_declare() {
    let b = built();
    let n = Names::new(VERSION);
    for (name, format, create_type) in [
        (n.ovf_disk(), "vmdk", Some("streamOptimized")),
        (n.vmdk(), "vmdk", Some("monolithicSparse")),
        (n.vhd(), "vpc", None),
        (n.qcow2(), "qcow2", None),
    ] {
        let out = Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(b.out.join(&name))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("\"format\": \"{format}\"")),
            "{name}: {text}"
        );
        assert!(
            text.contains("\"virtual-size\": 268435456"),
            "{name}: {text}"
        );
        if let Some(t) = create_type {
            assert!(
                text.contains(&format!("\"create-type\": \"{t}\"")),
                "{name}: {text}"
            );
        }
    }
}

#[test]
fn every_artifact_verifies() {
    let b = built();
    let mut names: Vec<String> = fs::read_dir(&b.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "SHA256SUMS")
        .collect();
    names.sort();
    let n = Names::new(VERSION);
    let mut want = vec![
        n.ova(),
        n.ovf(),
        n.mf(),
        n.ovf_disk(),
        n.vmdk(),
        n.vhd(),
        n.qcow2(),
    ];
    want.sort();
    assert_eq!(names, want);
    for name in names {
        verify(&b.out.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // sha256sum -c agrees with SHA256SUMS.
    let st = Command::new("sha256sum")
        .args(["--quiet", "-c", "SHA256SUMS"])
        .current_dir(&b.out)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn ova_members_are_descriptor_disk_manifest() {
    let b = built();
    let n = Names::new(VERSION);
    let out = Command::new("tar")
        .args(["--list", "--verbose", "--file"])
        .arg(b.out.join(n.ova()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(names, [n.ovf(), n.ovf_disk(), n.mf()]);
    // GNU tar recognises the members as ustar, regular files, 0644.
    assert!(text.lines().all(|l| l.starts_with("-rw-r--r--")), "{text}");
    let mf = fs::read_to_string(b.out.join(n.mf())).unwrap();
    let lines: Vec<&str> = mf.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with(&format!("SHA256({})= ", n.ovf())),
        "{mf}"
    );
    assert!(
        lines[1].starts_with(&format!("SHA256({})= ", n.ovf_disk())),
        "{mf}"
    );
}

/// A copy of `name` with one byte changed at `at` (from the end when negative).
fn corrupted(b: &Built, name: &str, at: i64, dir: &Path) -> PathBuf {
    let copy = dir.join(name);
    fs::copy(b.out.join(name), &copy).unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&copy)
        .unwrap();
    let len = f.metadata().unwrap().len() as i64;
    let at = if at < 0 { len + at } else { at } as u64;
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, at).unwrap();
    f.write_all_at(&[byte[0] ^ 0x5a], at).unwrap();
    copy
}

#[test]
fn one_corrupt_byte_of_the_ova_disk_is_caught() {
    let b = built();
    let n = Names::new(VERSION);
    let t = tempfile::tempdir().unwrap();
    // The disk member starts after the descriptor's header and data: find
    // it by its VMDK magic, then hit a byte inside the first grain's data.
    let ova = fs::read(b.out.join(n.ova())).unwrap();
    let disk = ova.windows(4).position(|w| w == b"KDMV").unwrap() as i64;
    let bad = corrupted(b, &n.ova(), disk + 65536 + 100, t.path());
    let e = verify(&bad).unwrap_err().to_string();
    assert!(
        e.contains("manifest digest") && e.contains(&n.ovf_disk()),
        "{e}"
    );
}

#[test]
fn corruptions_name_the_failed_check() {
    let b = built();
    let n = Names::new(VERSION);
    let t = tempfile::tempdir().unwrap();
    for (name, at, what) in [
        (n.vhd(), -400, "VHD footer: checksum"),
        (n.vhd(), 100, "VHD footer: the copy"),
        (n.vhd(), 600, "VHD dynamic header: checksum"),
        (n.ovf_disk(), 0, "VMDK header: magic"),
        (n.ovf_disk(), -1100, "VMDK stream footer"),
        (n.vmdk(), 600, "VMDK descriptor"),
        (n.qcow2(), 0, "qcow2 header: magic"),
        (n.ovf(), 1, "not well-formed XML"),
    ] {
        let sub = t
            .path()
            .join(format!("{what}{at}").replace([' ', ':'], "_"));
        fs::create_dir(&sub).unwrap();
        // The .ovf is checked with its files beside it.
        for other in [n.ovf_disk(), n.mf()] {
            if other != name {
                fs::copy(b.out.join(&other), sub.join(&other)).unwrap();
            }
        }
        let bad = corrupted(b, &name, at, &sub);
        let e = verify(&bad).unwrap_err().to_string();
        assert!(e.contains(what), "{name} at {at}: {e}");
    }
}

#[test]
fn ovf_declares_the_disk_as_written() {
    let b = built();
    let n = Names::new(VERSION);
    let xml = fs::read_to_string(b.out.join(n.ovf())).unwrap();
    let info = gateway_image::ovf::check(&xml).unwrap();
    assert_eq!(info.disks[0].capacity, 256 << 20);
    let size = fs::metadata(b.out.join(n.ovf_disk())).unwrap().len();
    assert_eq!(info.files[0].size, Some(size));
    assert_eq!(info.version.as_deref(), Some(VERSION));
}

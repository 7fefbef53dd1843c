//! End-to-end checks of the image builder with the real Debian tools and
//! packages: build a root filesystem from the host's /bin/true standing in
//! for PID 1, then a 2 GiB disk, and look inside both the way the appliance
//! and a hypervisor would see them. Booting is the QEMU tests' job.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use gateway_image::inspect::{list_dir, DirEntryInfo};
use gateway_image::layout::{self, GIB, MIB};
use gateway_image::{build_disk, build_rootfs, DiskSpec, Filesystem, RootfsSpec};

const VERSION: &str = "7.7.7-test";
const DISK_SIZE: u64 = 2 * GIB;
/// The packages the Makefile downloads. libe2p2 is its own package only
/// from Debian 13; before that libe2p lives in libext2fs2.
const PACKAGES: [&str; 7] = [
    "libc6",
    "libgcc-s1",
    "e2fsprogs",
    "libext2fs2",
    "libcom-err2",
    "libblkid1",
    "libuuid1",
];

struct Built {
    dir: PathBuf,
    root: PathBuf,
    disk: PathBuf,
    cmdline: PathBuf,
}

/// The .deb files: `$GATEWAY_DEBS`, else /tmp/gw-debs, downloaded with
/// apt-get when empty.
fn debs() -> PathBuf {
    let dir = std::env::var_os("GATEWAY_DEBS")
        .map_or_else(|| PathBuf::from("/tmp/gw-debs"), PathBuf::from);
    fs::create_dir_all(&dir).expect("create debs dir");
    let have = fs::read_dir(&dir)
        .expect("list debs dir")
        .filter_map(Result::ok)
        .any(|e| e.path().extension().is_some_and(|x| x == "deb"));
    if !have {
        let status = Command::new("apt-get")
            .arg("download")
            .args(PACKAGES)
            .current_dir(&dir)
            .status()
            .expect("run apt-get download");
        assert!(status.success(), "apt-get download failed");
        // Present only on newer Debian releases.
        let _ = Command::new("apt-get")
            .args(["download", "libe2p2"])
            .current_dir(&dir)
            .status();
    }
    dir
}

/// Builds the root filesystem and the disk once for all tests.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-test");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create test dir");
        let root = dir.join("root.ext4");
        build_rootfs(&RootfsSpec {
            init: "/bin/true".into(),
            programs: vec!["/bin/false".into()],
            debs: debs(),
            out: root.clone(),
            version: VERSION.into(),
            support_recipient: Some(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/support-dev.age.pub"),
            ),
        })
        .expect("build rootfs");
        let kernel = dir.join("bzImage");
        fs::write(&kernel, b"not a kernel, the disk does not care").expect("write kernel");
        let disk = dir.join("disk.raw");
        let cmdline = dir.join("cmdline");
        build_disk(&DiskSpec {
            kernel,
            root: root.clone(),
            out: disk.clone(),
            size: DISK_SIZE,
            cmdline_out: Some(cmdline.clone()),
        })
        .expect("build disk");
        Built {
            dir,
            root,
            disk,
            cmdline,
        }
    })
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway-image"))
        .args(args)
        .output()
        .expect("run gateway-image")
}

#[test]
fn partition_table_follows_the_layout() {
    let b = built();
    let mut head = vec![0; gateway_gpt::head_len()];
    fs::File::open(&b.disk)
        .and_then(|mut f| f.read_exact(&mut head))
        .expect("read disk");
    let gpt = gateway_gpt::parse(&head).expect("GPT parses");
    assert_eq!(gpt.disk_guid.to_string(), layout::DISK_GUID);
    assert_eq!(gpt.alternate_lba, DISK_SIZE / 512 - 1);
    assert_eq!(gpt.partitions.len(), 4);
    for (p, spec) in gpt.partitions.iter().zip(layout::PARTITIONS) {
        assert_eq!(p.number, spec.number);
        assert_eq!(p.name, spec.name);
        assert_eq!(p.byte_offset(), spec.start, "{}", spec.name);
        assert_eq!(p.byte_len(), layout::partition_size(&spec, DISK_SIZE));
        assert_eq!(p.type_guid.to_string(), spec.type_guid);
        assert_eq!(p.unique_guid.to_string(), spec.uuid);
    }
    assert_eq!(
        gpt.partitions[1].unique_guid.to_string(),
        gateway_image::ROOT_A_PARTUUID
    );
    assert_eq!(gpt.partitions[0].attributes, 1 << 2);
    // The state partition ends where PID 1's growth plan would put it, so
    // an unresized disk needs no growth.
    assert!(gateway_gpt::plan_grow_last(&head, DISK_SIZE)
        .expect("plan")
        .is_none());

    let verify = tool("sfdisk", &["--verify", b.disk.to_str().unwrap()]);
    assert!(verify.contains("No errors detected"), "{verify}");

    let mbr = fs::read("/usr/lib/syslinux/mbr/gptmbr.bin").expect("read gptmbr.bin");
    assert_eq!(mbr.len(), 440);
    assert_eq!(&head[..440], &mbr[..]);
    assert_eq!(
        &head[510..512],
        &[0x55, 0xAA],
        "sfdisk's protective MBR kept"
    );
}

#[test]
fn partitions_report_their_filesystems() {
    let parts = gateway_image::partitions(&built().disk).expect("inspect");
    let fs: Vec<_> = parts.iter().map(|p| p.filesystem.clone()).collect();
    assert_eq!(
        fs[0],
        Filesystem::Fat {
            bits: 32,
            label: "BOOT".into()
        }
    );
    assert!(
        matches!(&fs[1], Filesystem::Ext4(i) if i.label == "ROOT-A" && i.blocks_count == 65536)
    );
    assert_eq!(fs[2], Filesystem::Empty);
    let state = gateway_image::ext4_info(&built().disk, 4).expect("state is ext4");
    assert_eq!(state.label, "STATE");
    assert_eq!(state.block_size, 4096);
    assert_eq!(
        state.blocks_count * 4096,
        layout::partition_size(&layout::STATE, DISK_SIZE)
    );
    let err = gateway_image::ext4_info(&built().disk, 3).unwrap_err();
    assert!(err.to_string().contains("partition 3"), "{err}");
    let err = gateway_image::ext4_info(&built().disk, 9).unwrap_err();
    assert!(err.to_string().contains("no partition 9"), "{err}");
}

#[test]
fn root_filesystem_has_init_tools_and_libraries() {
    let disk = &built().disk;
    let os_release = gateway_image::read_file(disk, 2, "/etc/os-release").expect("os-release");
    let os_release = String::from_utf8(os_release).expect("utf-8");
    assert!(
        os_release.contains(&format!("VERSION_ID={VERSION}\n")),
        "{os_release}"
    );
    assert!(os_release.contains("ID=gateway\n"));

    for elf in [
        "/sbin/init",
        "/sbin/e2fsck",
        "/sbin/mke2fs",
        "/sbin/resize2fs",
        "/lib/x86_64-linux-gnu/libext2fs.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libcom_err.so.2",
        "/lib64/ld-linux-x86-64.so.2",
    ] {
        let bytes = gateway_image::read_file(disk, 2, elf).unwrap_or_else(|e| panic!("{e}"));
        assert!(bytes.starts_with(b"\x7fELF"), "{elf} is not an ELF file");
    }
    assert_eq!(
        gateway_image::read_file(disk, 2, "/sbin/init").unwrap(),
        fs::read("/bin/true").unwrap()
    );
    let conf = gateway_image::read_file(disk, 2, "/etc/mke2fs.conf").expect("mke2fs.conf");
    assert!(String::from_utf8_lossy(&conf).contains("ext4"));
    assert_eq!(
        gateway_image::read_file(disk, 2, "/etc/passwd").unwrap(),
        b"root:x:0:0:root:/root:/sbin/nologin\nproxy:x:101:101:gateway proxy:/var/lib/units/proxy:/sbin/nologin\n\
console:x:102:102:gateway console:/var/lib/units/console-tty1:/sbin/nologin\n\
agent:x:103:103:gateway management agent:/var/lib/units/agent:/sbin/nologin\n\
cache:x:104:104:gateway cache:/var/lib/units/cache:/sbin/nologin\n\
sftp:x:105:105:gateway diagnostics SFTP:/var/lib/units/sftp:/sbin/nologin\n"
    );
    assert_eq!(
        gateway_image::read_file(disk, 2, "/usr/share/gateway/support-recipient.age.pub").unwrap(),
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/support-dev.age.pub")).unwrap(),
        "the support key is installed"
    );

    let sbin = list_dir(disk, 2, "/sbin").expect("ls /sbin");
    let link = |name: &str| {
        sbin.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.link.clone())
    };
    assert_eq!(link("poweroff").as_deref(), Some("init"));
    assert_eq!(link("reboot").as_deref(), Some("init"));
    let top = list_dir(disk, 2, "/").expect("ls /");
    let mode = |name: &str| top.iter().find(|e| e.name == name).map(|e| e.mode);
    assert_eq!(mode("root"), Some(0o040700));
    for dir in ["proc", "sys", "dev", "run", "tmp", "var", "mnt"] {
        assert!(
            mode(dir).is_some_and(|m| m & 0o170000 == 0o040000),
            "/{dir}"
        );
    }
    // Nothing beyond what PID 1 needs: no shell, no docs.
    assert!(gateway_image::read_file(disk, 2, "/bin/sh").is_err());
    let usr_bin: Vec<_> = list_dir(disk, 2, "/usr/bin")
        .expect("ls /usr/bin")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(usr_bin, ["false"], "only the programs given");
    assert_eq!(
        gateway_image::read_file(disk, 2, "/usr/bin/false").unwrap(),
        fs::read("/bin/false").unwrap()
    );
    let etc = list_dir(disk, 2, "/etc").expect("ls /etc");
    let etc_link = |name: &str| {
        etc.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.link.clone())
    };
    assert_eq!(
        etc_link("resolv.conf").as_deref(),
        Some("../run/resolv.conf")
    );
    assert_eq!(etc_link("hosts").as_deref(), Some("../run/hosts"));
    assert_eq!(
        gateway_image::read_file(disk, 2, "/etc/nsswitch.conf").unwrap(),
        b"hosts: files dns\n"
    );
}

#[test]
fn every_root_file_belongs_to_root() {
    fn walk(disk: &Path, dir: &str, seen: &mut Vec<(String, DirEntryInfo)>) {
        for e in list_dir(disk, 2, dir).expect("ls") {
            let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
            if e.mode & 0o170000 == 0o040000 {
                walk(disk, &path, seen);
            }
            seen.push((path, e));
        }
    }
    let mut all = Vec::new();
    walk(&built().disk, "/", &mut all);
    assert!(all.len() > 20, "{} entries", all.len());
    for (path, e) in all {
        assert_eq!((e.uid, e.gid), (0, 0), "{path}");
    }
}

#[test]
fn boot_partition_has_kernel_and_both_bootloaders() {
    let b = built();
    let img = format!("{}@@{}", b.disk.display(), layout::BOOT.start);
    let root = tool("mdir", &["-a", "-b", "-i", &img, "::/"]).to_lowercase();
    for name in ["bzimage", "syslinux.cfg", "ldlinux.sys", "ldlinux.c32"] {
        assert!(
            root.contains(&format!("::/{name}")),
            "{name} missing: {root}"
        );
    }
    let efi = tool("mdir", &["-b", "-i", &img, "::/EFI/BOOT"]).to_lowercase();
    for name in ["bootx64.efi", "ldlinux.e64", "syslinux.cfg"] {
        assert!(efi.contains(name), "{name} missing: {efi}");
    }
    let cmdline = gateway_image::kernel_cmdline();
    for cfg in ["::/syslinux.cfg", "::/EFI/BOOT/syslinux.cfg"] {
        let text = tool("mtype", &["-i", &img, cfg]);
        assert!(text.contains(&format!("APPEND {cmdline}")), "{text}");
    }
    assert_eq!(
        tool("mtype", &["-i", &img, "::/bzImage"]),
        "not a kernel, the disk does not care"
    );
    assert_eq!(fs::read_to_string(&b.cmdline).unwrap(), cmdline);
}

#[test]
fn disk_is_sparse() {
    let b = built();
    let meta = fs::metadata(&b.disk).unwrap();
    assert_eq!(meta.len(), DISK_SIZE);
    let allocated = meta.blocks() * 512;
    assert!(allocated < 32 * MIB, "{allocated} bytes allocated");
    assert!(fs::metadata(b.root.with_extension("ext4.tmp")).is_err());
    assert!(!b.dir.join("disk.raw.tmp").exists());
}

#[test]
fn inspect_cli_prints_table_and_files() {
    let disk = built().disk.to_str().unwrap();
    let out = cli(&["inspect", disk]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(layout::ROOT_A_PARTUUID), "{table}");
    assert!(table.contains("label=STATE"), "{table}");

    let out = cli(&["inspect", disk, "--cat", "/etc/os-release"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(VERSION));

    let out = cli(&["inspect", disk, "--ls", "/lib/x86_64-linux-gnu"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("libc.so.6"));

    let out = cli(&["inspect", disk, "--cat", "/etc/missing"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("gateway-image: ") && err.contains("/etc/missing"),
        "{err}"
    );
}

#[test]
fn too_small_size_names_the_option_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.raw");
    let kernel = dir.path().join("bzImage");
    fs::write(&kernel, b"k").unwrap();
    let run = cli(&[
        "disk",
        "--kernel",
        kernel.to_str().unwrap(),
        "--root",
        built().root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        "100MiB",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("--size") && err.contains("642 MiB"), "{err}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the kernel"
    );

    let run = cli(&[
        "disk", "--kernel", "k", "--root", "r", "--out", "o", "--size", "2GB",
    ]);
    assert_eq!(run.status.code(), Some(2), "clap refuses a decimal unit");
    assert!(String::from_utf8_lossy(&run.stderr).contains("--size"));
}

#[test]
fn missing_kernel_is_named_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("disk.raw");
    let kernel = dir.path().join("no-such-bzImage");
    let run = cli(&[
        "disk",
        "--kernel",
        kernel.to_str().unwrap(),
        "--root",
        built().root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        "1GiB",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains(kernel.to_str().unwrap()), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_failure_midway_removes_the_partial_disk() {
    // A kernel larger than the boot partition passes the early checks and
    // fails in mcopy, after the output file was created.
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("huge-bzImage");
    let f = fs::File::create(&kernel).unwrap();
    f.set_len(100 * MIB).unwrap();
    let out = dir.path().join("disk.raw");
    let err = build_disk(&DiskSpec {
        kernel,
        root: built().root.clone(),
        out: out.clone(),
        size: GIB,
        cmdline_out: None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("mcopy"), "{err}");
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("huge-bzImage")]);
}

#[test]
fn missing_library_names_binary_and_soname() {
    // Only libc6 and e2fsprogs: the tools need libext2fs, which is not there.
    let debs = tempfile::tempdir().unwrap();
    for package in ["libc6_", "e2fsprogs_"] {
        let deb = fs::read_dir(debs_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(package))
            })
            .expect("deb present");
        fs::copy(&deb, debs.path().join(deb.file_name().unwrap())).unwrap();
    }
    let out = debs.path().join("root.ext4");
    let err = build_rootfs(&RootfsSpec {
        init: "/bin/true".into(),
        programs: vec![],
        debs: debs.path().into(),
        out: out.clone(),
        version: VERSION.into(),
        support_recipient: None,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs libext2fs.so.2"), "{err}");
    assert!(
        ["/sbin/e2fsck", "/sbin/mke2fs", "/sbin/resize2fs"]
            .iter()
            .any(|b| err.starts_with(b)),
        "{err}"
    );
    assert!(!out.exists());
    assert!(!debs.path().join("root.ext4.tmp").exists());
}

/// The debs directory, after the shared build made sure it is filled.
fn debs_dir() -> PathBuf {
    built();
    debs()
}

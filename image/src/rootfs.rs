//! The root filesystem image: PID 1, the three e2fsprogs tools it runs on the
//! state partition and their libraries (from Debian .deb files, extracted with
//! `dpkg-deb -x`, never from the build host), a handful of /etc files, and
//! the empty mount points; packed with `mkfs.ext4 -d`, which needs no root
//! rights and no loop device.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::elf::{self, ElfError};
use crate::layout;
use crate::tool::{self, ToolError};

/// The e2fsprogs binaries PID 1 runs (fsck, first-boot mkfs, growth).
pub const E2FS_TOOLS: [&str; 3] = ["e2fsck", "mke2fs", "resize2fs"];
/// Size of the root filesystem, the size of a root partition.
pub const ROOT_FS_SIZE: &str = "256M";

/// Why the root filesystem could not be built.
#[derive(Debug, Error)]
pub enum RootfsError {
    #[error("init binary {path}: {source}")]
    Init {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot list .deb files in {path}: {source}")]
    Debs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no .deb files in {path} (the Makefile's `debs` target downloads them)")]
    NoDebs { path: PathBuf },
    #[error("{tool} is in none of the .deb files in {debs} (looked in sbin and usr/sbin; is e2fsprogs there?)")]
    MissingTool { tool: String, debs: PathBuf },
    #[error("{file} is in none of the .deb files in {debs}")]
    MissingFile { file: String, debs: PathBuf },
    #[error("cannot create the staging directory: {source}")]
    TempDir { source: std::io::Error },
    #[error("cannot stage {path}: {source}")]
    Stage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set file owners to root in {image} with debugfs: {detail}")]
    Owners { image: PathBuf, detail: String },
    #[error(transparent)]
    Libraries(#[from] ElfError),
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// What to build.
#[derive(Clone, Debug)]
pub struct RootfsSpec {
    /// The PID 1 binary, installed as /sbin/init.
    pub init: PathBuf,
    /// More programs of ours, installed in /usr/bin under their file names
    /// (gatewayctl).
    pub programs: Vec<PathBuf>,
    /// A directory of .deb files (libc6, e2fsprogs and its libraries).
    pub debs: PathBuf,
    /// The ext4 image to write.
    pub out: PathBuf,
    /// The appliance version written to /etc/os-release.
    pub version: String,
    /// The support team's age public key (a file whose first line that is
    /// not a comment is `age1...`), installed as
    /// /usr/share/gateway/support-recipient.age.pub: diagnostics reports
    /// are encrypted to it (image/keys/README.md).
    pub support_recipient: Option<PathBuf>,
}

/// What was built.
#[derive(Clone, Debug)]
pub struct RootfsReport {
    /// Files in the staged tree (regular files and symlinks).
    pub files: u64,
    /// Bytes of regular files in the staged tree.
    pub bytes: u64,
}

/// Builds the root filesystem image described by `spec`. The image is
/// written next to `spec.out` and renamed over it at the end, so a failed
/// build leaves no half image.
pub fn build_rootfs(spec: &RootfsSpec) -> Result<RootfsReport, RootfsError> {
    let init_meta = fs::metadata(&spec.init).map_err(|source| RootfsError::Init {
        path: spec.init.clone(),
        source,
    })?;
    if !init_meta.is_file() {
        return Err(RootfsError::Init {
            path: spec.init.clone(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    let debs = list_debs(&spec.debs)?;
    let work = tempfile::Builder::new()
        .prefix("gateway-rootfs.")
        .tempdir()
        .map_err(|source| RootfsError::TempDir { source })?;
    let extracted = work.path().join("debs");
    let root = work.path().join("root");

    crate::progress(&format!(
        "extracting {} packages from {}",
        debs.len(),
        spec.debs.display()
    ));
    for deb in &debs {
        tool::run(
            tool::command("dpkg-deb").arg("-x").arg(deb).arg(&extracted),
            None,
        )?;
    }

    crate::progress("staging the root tree");
    stage_skeleton(&root, &spec.version)?;
    copy_file(&spec.init, &root.join("sbin/init"), 0o755)?;
    for program in &spec.programs {
        let name = program.file_name().ok_or_else(|| RootfsError::Init {
            path: program.clone(),
            source: std::io::Error::other("not a file name"),
        })?;
        copy_file(program, &root.join("usr/bin").join(name), 0o755)?;
    }
    let links = [
        // init is multi-call: it looks at argv[0].
        ("sbin/poweroff", "init"),
        ("sbin/reboot", "init"),
        // e2fsck and resize2fs find mounted filesystems through /etc/mtab.
        ("etc/mtab", "../proc/self/mounts"),
        // Written by init from the configuration; / is read-only.
        ("etc/resolv.conf", "../run/resolv.conf"),
        ("etc/hosts", "../run/hosts"),
    ];
    for (link, target) in links {
        let at = root.join(link);
        symlink(target, &at).map_err(|source| RootfsError::Stage { path: at, source })?;
    }
    for name in E2FS_TOOLS {
        let source = ["sbin", "usr/sbin"]
            .iter()
            .find_map(|dir| elf::resolve_in_tree(&extracted, &Path::new(dir).join(name)))
            .ok_or_else(|| RootfsError::MissingTool {
                tool: name.to_string(),
                debs: spec.debs.clone(),
            })?;
        copy_file(&source, &root.join("sbin").join(name), 0o755)?;
    }
    let conf = elf::resolve_in_tree(&extracted, Path::new("etc/mke2fs.conf")).ok_or_else(|| {
        RootfsError::MissingFile {
            file: "/etc/mke2fs.conf".into(),
            debs: spec.debs.clone(),
        }
    })?;
    copy_file(&conf, &root.join("etc/mke2fs.conf"), 0o644)?;
    if let Some(key) = &spec.support_recipient {
        let text = fs::read_to_string(key).map_err(|source| RootfsError::Stage {
            path: key.clone(),
            source,
        })?;
        check_recipient(&text).map_err(|why| RootfsError::Stage {
            path: key.clone(),
            source: std::io::Error::other(why),
        })?;
        let dir = root.join("usr/share/gateway");
        fs::create_dir_all(&dir).map_err(|source| RootfsError::Stage {
            path: dir.clone(),
            source,
        })?;
        copy_file(key, &dir.join("support-recipient.age.pub"), 0o644)?;
    }

    crate::progress("resolving shared libraries");
    let libs = elf::install_closure(&root, &extracted)?;
    for lib in &libs {
        crate::progress(&format!("  /{}", lib.display()));
    }

    let report = measure(&root)?;
    crate::progress(&format!(
        "staged root tree: {} files, {} KiB",
        report.files,
        report.bytes.div_ceil(1024)
    ));

    let tmp = crate::tmp_path(&spec.out);
    let guard = crate::RemoveOnDrop(tmp.clone());
    // mkfs.ext4 keeps an existing file's larger size: start from nothing.
    remove_if_exists(&tmp)?;
    crate::progress(&format!("creating ext4 {}", spec.out.display()));
    tool::run(
        tool::command("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(&root)
            .args(["-L", layout::ROOT_LABEL, "-O", "^has_journal", "-b", "4096"])
            // A few dozen files: 4096 inodes instead of the default 65,536
            // keep 15 MiB of empty inode tables out of the root.
            .args(["-N", "4096"])
            .args(["-U", layout::ROOT_FS_UUID])
            .arg("-E")
            .arg(format!("root_owner=0:0,hash_seed={}", layout::ROOT_FS_UUID))
            .arg(&tmp)
            .arg(ROOT_FS_SIZE),
        None,
    )?;
    if fix_owners(&root, &tmp, work.path())? {
        crate::progress("set file owners to root");
    }
    fs::rename(&tmp, &spec.out).map_err(|source| RootfsError::Output {
        path: spec.out.clone(),
        source,
    })?;
    guard.disarm();
    Ok(report)
}

/// An age X25519 public key: `age1` and 58 Bech32 characters, on the first
/// line that is not a comment.
pub fn check_recipient(text: &str) -> Result<(), String> {
    const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let ok = line.len() == 62
        && line.starts_with("age1")
        && line[4..].chars().all(|c| BECH32.contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "not an age public key (age1 and 58 Bech32 characters): {line:?}"
        ))
    }
}

/// The .deb files in `dir`, sorted so extraction order is stable.
fn list_debs(dir: &Path) -> Result<Vec<PathBuf>, RootfsError> {
    let err = |source| RootfsError::Debs {
        path: dir.to_path_buf(),
        source,
    };
    let mut debs = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            debs.push(path);
        }
    }
    if debs.is_empty() {
        return Err(RootfsError::NoDebs {
            path: dir.to_path_buf(),
        });
    }
    debs.sort();
    Ok(debs)
}

/// Directories, their modes, and the /etc files of the root.
fn stage_skeleton(root: &Path, version: &str) -> Result<(), RootfsError> {
    let dirs: [(&str, u32); 16] = [
        ("", 0o755),
        ("sbin", 0o755),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("etc", 0o755),
        ("lib", 0o755),
        ("lib/x86_64-linux-gnu", 0o755),
        ("lib64", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("run", 0o755),
        // Sticky and world-writable, in case nothing is mounted over it.
        ("tmp", 0o1777),
        ("var", 0o755),
        ("root", 0o700),
        ("mnt", 0o755),
    ];
    for (dir, mode) in dirs {
        let path = root.join(dir);
        fs::create_dir_all(&path)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(mode)))
            .map_err(|source| RootfsError::Stage { path, source })?;
    }
    let files = [
        ("etc/os-release", os_release(version)),
        (
            "etc/passwd",
            // Each service runs as its own user (init's unit table has
            // the same numbers).
            "root:x:0:0:root:/root:/sbin/nologin\n\
             proxy:x:101:101:gateway proxy:/var/lib/units/proxy:/sbin/nologin\n\
             console:x:102:102:gateway console:/var/lib/units/console-tty1:/sbin/nologin\n\
             agent:x:103:103:gateway management agent:/var/lib/units/agent:/sbin/nologin\n\
             cache:x:104:104:gateway cache:/var/lib/units/cache:/sbin/nologin\n\
             sftp:x:105:105:gateway diagnostics SFTP:/var/lib/units/sftp:/sbin/nologin\n"
                .to_string(),
        ),
        (
            "etc/group",
            // Group console may use the control socket (mode 0660).
            "root:x:0:\nproxy:x:101:\nconsole:x:102:\nagent:x:103:\ncache:x:104:\nsftp:x:105:\n"
                .to_string(),
        ),
        ("etc/hostname", "gateway\n".to_string()),
        // The hosts map overrides DNS, for libc's resolver too (glibc's
        // default without this file asks DNS first).
        ("etc/nsswitch.conf", "hosts: files dns\n".to_string()),
    ];
    for (name, text) in files {
        let path = root.join(name);
        fs::write(&path, text)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o644)))
            .map_err(|source| RootfsError::Stage { path, source })?;
    }
    Ok(())
}

/// /etc/os-release (os-release(5)).
pub fn os_release(version: &str) -> String {
    format!(
        "NAME=\"Gateway Appliance\"\nID=gateway\nVERSION=\"{version}\"\nVERSION_ID={version}\n\
         PRETTY_NAME=\"Gateway Appliance {version}\"\n"
    )
}

fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<(), RootfsError> {
    fs::copy(from, to)
        .and_then(|_| fs::set_permissions(to, fs::Permissions::from_mode(mode)))
        .map(|_| ())
        .map_err(|source| RootfsError::Stage {
            path: to.to_path_buf(),
            source,
        })
}

fn remove_if_exists(path: &Path) -> Result<(), RootfsError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RootfsError::Output {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Every path in the staged tree, relative to it, directories first.
fn walk(root: &Path) -> Result<Vec<(PathBuf, fs::Metadata)>, RootfsError> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        let full = root.join(&dir);
        let err = |source| RootfsError::Stage {
            path: full.clone(),
            source,
        };
        let mut entries: Vec<_> = fs::read_dir(&full)
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel = dir.join(entry.file_name());
            let meta = fs::symlink_metadata(entry.path()).map_err(err)?;
            if meta.is_dir() {
                dirs.push(rel.clone());
            }
            out.push((rel, meta));
        }
    }
    Ok(out)
}

fn measure(root: &Path) -> Result<RootfsReport, RootfsError> {
    let mut report = RootfsReport { files: 0, bytes: 0 };
    for (_, meta) in walk(root)? {
        if !meta.is_dir() {
            report.files += 1;
        }
        if meta.is_file() {
            report.bytes += meta.len();
        }
    }
    Ok(report)
}

/// mkfs.ext4 -d copies the builder's uid/gid into the image; without root
/// rights the staged files cannot be chowned, so when any staged file is not
/// root's, rewrite every inode's owner with debugfs. Returns whether it did.
fn fix_owners(root: &Path, image: &Path, scratch: &Path) -> Result<bool, RootfsError> {
    let Some(script) = ownership_script(root)? else {
        return Ok(false);
    };
    let script_path = scratch.join("owners.debugfs");
    fs::write(&script_path, script).map_err(|source| RootfsError::Stage {
        path: script_path.clone(),
        source,
    })?;
    let (_, stderr) = tool::run_capture(
        tool::command("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&script_path)
            .arg(image),
        None,
    )?;
    // debugfs exits 0 whatever its commands did; its stderr holds its
    // banner and one line per failed command.
    let failures: Vec<String> = String::from_utf8_lossy(&stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .map(str::to_string)
        .collect();
    if !failures.is_empty() {
        return Err(RootfsError::Owners {
            image: image.to_path_buf(),
            detail: failures.join("; "),
        });
    }
    Ok(true)
}

/// A debugfs script that sets every inode's owner to root, or `None` when
/// the staged tree already belongs to root (a build run as root).
fn ownership_script(root: &Path) -> Result<Option<String>, RootfsError> {
    let entries = walk(root)?;
    if entries.iter().all(|(_, m)| m.uid() == 0 && m.gid() == 0) {
        return Ok(None);
    }
    let mut script = String::new();
    for (rel, _) in entries {
        let path = rel.to_string_lossy();
        // debugfs splits its arguments on spaces and has no quoting that all
        // versions accept; the staged tree has no such names, and a name
        // that had one would be left owned by the builder, not misapplied.
        if path.contains(char::is_whitespace) {
            continue;
        }
        script.push_str(&format!("sif /{path} uid 0\nsif /{path} gid 0\n"));
    }
    Ok(Some(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_age_public_key_is_a_support_recipient() {
        let dev = include_str!("../keys/support-dev.age.pub");
        assert!(check_recipient(dev).is_ok());
        assert!(check_recipient(&format!("# support team\n{dev}")).is_ok());
        let secret = include_str!("../keys/support-dev.age");
        let err = check_recipient(secret).unwrap_err();
        assert!(err.contains("not an age public key"), "{err}");
        assert!(check_recipient("age1tooshort").is_err());
        assert!(check_recipient("").is_err());
    }

    #[test]
    fn os_release_carries_the_version() {
        let text = os_release("1.2.3");
        assert!(text.contains("VERSION_ID=1.2.3\n"));
        assert!(text.contains("PRETTY_NAME=\"Gateway Appliance 1.2.3\"\n"));
        assert!(!text.contains("HOME_URL"));
    }

    /// A tree staged by an unprivileged builder ends up owned by root in
    /// the image. Needs root to chown the staged file to someone else.
    #[test]
    fn foreign_owners_are_rewritten_to_root() {
        if !fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
        {
            eprintln!("skipped: needs root to give a file another owner");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hostname"), "gateway\n").unwrap();
        std::os::unix::fs::chown(root.join("etc/hostname"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::chown(root.join("etc"), Some(1000), Some(1000)).unwrap();
        let img = t.path().join("fs.img");
        tool::run(
            tool::command("mkfs.ext4")
                .args(["-q", "-F", "-d"])
                .arg(&root)
                .arg(&img)
                .arg("8M"),
            None,
        )
        .unwrap();
        let script = ownership_script(&root)
            .unwrap()
            .expect("owners need fixing");
        assert!(script.contains("sif /etc/hostname uid 0\n"));
        assert!(fix_owners(&root, &img, t.path()).unwrap());
        let fs = ext4_view::Ext4::load(Box::new(fs::File::open(&img).unwrap())).unwrap();
        for p in ["/etc", "/etc/hostname"] {
            let m = fs.symlink_metadata(p).unwrap();
            assert_eq!((m.uid(), m.gid()), (0, 0), "{p}");
        }
    }
}

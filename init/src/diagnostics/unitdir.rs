//! A directory a unit can write, handled by root without following links
//! in it. The SFTP unit owns its state directory, so it can put a symbolic
//! link where PID 1 expects its report directory, the host key's
//! fingerprint or a report: through a path, root's chown, removal, read or
//! write would land wherever the link points (`/etc`, another unit's key).
//! Here every name is opened relative to the directory's descriptor with
//! `O_NOFOLLOW`, and owners and modes are set on descriptors, never paths.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode, SFlag};
use nix::unistd::{fchown, unlinkat, Gid, Uid, UnlinkatFlags};

const DIR: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

#[derive(Debug)]
pub struct UnitDir {
    fd: OwnedFd,
    /// For messages only.
    path: PathBuf,
}

fn io(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

impl UnitDir {
    /// Opens `path`, which must be a directory and not a link (its parents
    /// are root's, so the unit cannot move them).
    pub fn open(path: &Path) -> std::io::Result<UnitDir> {
        let fd = nix::fcntl::open(path, DIR, Mode::empty()).map_err(io)?;
        Ok(UnitDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The subdirectory `name`, created when missing; a link or anything
    /// but a directory there is refused (ELOOP, ENOTDIR).
    pub fn subdir(&self, name: &str, mode: u32) -> std::io::Result<UnitDir> {
        match mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(io(e)),
        }
        let fd = openat(self.fd.as_fd(), name, DIR, Mode::empty()).map_err(io)?;
        Ok(UnitDir {
            fd,
            path: self.path.join(name),
        })
    }

    /// The subdirectory `name` if it is one (a link is refused).
    pub fn existing_subdir(&self, name: &str) -> std::io::Result<UnitDir> {
        let fd = openat(self.fd.as_fd(), name, DIR, Mode::empty()).map_err(io)?;
        Ok(UnitDir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Owned by `uid` (and its group), mode `mode`: set on the descriptor.
    pub fn own(&self, uid: u32, mode: u32) -> std::io::Result<()> {
        fchown(
            self.fd.as_fd(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(uid)),
        )
        .map_err(io)?;
        fchmod(self.fd.as_fd(), Mode::from_bits_truncate(mode)).map_err(io)
    }

    /// Removes the entry `name` (a link itself, never what it points to);
    /// missing is fine.
    pub fn remove(&self, name: &str) {
        let _ = unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir);
    }

    /// Removes every entry but directories.
    pub fn clear(&self) {
        if let Ok(entries) = std::fs::read_dir(self.fd_path()) {
            for e in entries.flatten() {
                if let Some(name) = e.file_name().to_str() {
                    self.remove(name);
                }
            }
        }
    }

    /// The regular file `name`, at most `max` bytes; a link, or anything
    /// but a regular file, is refused.
    pub fn read(&self, name: &str, max: u64) -> std::io::Result<Vec<u8>> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = openat(self.fd.as_fd(), name, flags, Mode::empty()).map_err(io)?;
        let st = fstat(fd.as_fd()).map_err(io)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(std::io::Error::other(format!(
                "{}: not a regular file",
                self.path.join(name).display()
            )));
        }
        let mut out = Vec::new();
        std::fs::File::from(fd).take(max).read_to_end(&mut out)?;
        Ok(out)
    }

    /// The size of the regular file `name`, not following a link.
    pub fn size(&self, name: &str) -> Option<u64> {
        let st = nix::sys::stat::fstatat(
            self.fd.as_fd(),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()?;
        (SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
            .then(|| u64::try_from(st.st_size).unwrap_or(0))
    }

    /// A path that names this very directory whatever becomes of its own
    /// path (the descriptor's link in /proc): for the file APIs that take
    /// paths, such as fsutil's atomic writes.
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, MetadataExt};

    use super::*;

    #[test]
    fn links_in_a_unit_s_directory_are_never_followed() {
        let unit = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let secret = elsewhere.path().join("secret");
        std::fs::write(&secret, "key").unwrap();
        symlink(elsewhere.path(), unit.path().join("report")).unwrap();
        symlink(&secret, unit.path().join("fingerprint")).unwrap();
        let dir = UnitDir::open(unit.path()).unwrap();
        // The report directory a link: refused, nothing made over there.
        let e = dir.subdir("report", 0o700).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 1);
        // A file that is a link: not read, no size.
        assert!(dir.read("fingerprint", 1024).is_err());
        assert_eq!(dir.size("fingerprint"), None);
        // Removing the link removes the link, and clearing clears only here.
        dir.clear();
        assert!(secret.exists());
        assert!(!unit.path().join("fingerprint").exists());
        assert!(!unit.path().join("report").exists());
        // A real subdirectory is made, owned and read through descriptors.
        let sub = dir.subdir("report", 0o700).unwrap();
        let me = nix::unistd::getuid().as_raw();
        sub.own(me, 0o700).unwrap();
        std::fs::write(sub.fd_path().join("r"), "report").unwrap();
        assert_eq!(sub.read("r", 3).unwrap(), b"rep");
        assert_eq!(sub.size("r"), Some(6));
        let meta = std::fs::metadata(unit.path().join("report")).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (me, 0o700));
        assert!(Path::new(&unit.path().join("report/r")).exists());
    }

    #[test]
    fn the_directory_itself_must_not_be_a_link() {
        let d = tempfile::tempdir().unwrap();
        symlink(d.path(), d.path().join("alias")).unwrap();
        assert!(UnitDir::open(&d.path().join("alias")).is_err());
        assert!(UnitDir::open(d.path()).is_ok());
    }
}

//! Durable file replacement, and nothing else. [`write_atomic`] replaces a
//! file so that a reader, or the boot after a power cut, finds the old
//! content or the whole new one, never a mix, an empty file, or a secret
//! that was readable by others for a moment: a temporary file beside the
//! target (a name no other writer uses, created with `O_EXCL` and the final
//! mode), its owner, the bytes, fsync, rename over the target, fsync of the
//! directory so that the rename itself is on disk. A crash leaves at most a
//! temporary file, which [`remove_temp_files`] clears.
//!
//! [`AtomicFile`] is the same replacement for a file written as a stream
//! (an archive, a packet capture): the temporary file is the writer, and
//! [`AtomicFile::commit`] does the rest; dropped without a commit, it
//! removes the temporary file and leaves the old one.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How the new file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// The permission bits of the new file, exactly (the umask does not
    /// change them). The file never has more than these, not even while it
    /// is written.
    pub mode: u32,
    /// `(uid, gid)` given to the new file before it replaces the target;
    /// `None` leaves it the writer's.
    pub owner: Option<(u32, u32)>,
}

impl Default for WriteOptions {
    /// Mode 0644, the writer's owner.
    fn default() -> Self {
        WriteOptions::with_mode(0o644)
    }
}

impl WriteOptions {
    /// `mode`, the writer's owner.
    pub const fn with_mode(mode: u32) -> Self {
        WriteOptions { mode, owner: None }
    }

    /// Mode 0600: for a file that holds a secret (a key, a password, a
    /// token).
    pub const fn private() -> Self {
        WriteOptions::with_mode(0o600)
    }

    /// The same, the new file owned by `uid` and `gid`.
    pub const fn owner(self, uid: u32, gid: u32) -> Self {
        WriteOptions {
            owner: Some((uid, gid)),
            ..self
        }
    }
}

/// A failed replacement: the step that failed, the file it was for and the
/// system's reason. Up to [`AtomicWriteError::Rename`] included, the target
/// is untouched and no temporary file is left; after
/// [`AtomicWriteError::SyncDir`] the new content is in place.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    #[error("create a temporary file to replace {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("give the new {path} to uid {uid}, gid {gid}: {source}")]
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
        source: io::Error,
    },
    #[error("set mode {mode:04o} on the new {path}: {source}")]
    Chmod {
        path: PathBuf,
        mode: u32,
        source: io::Error,
    },
    #[error("write the new {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("sync the new {path} to disk: {source}")]
    Sync { path: PathBuf, source: io::Error },
    #[error("rename the new file over {path}: {source}")]
    Rename { path: PathBuf, source: io::Error },
    #[error(
        "{path} is replaced but may not survive a power cut: sync its directory {dir}: {source}"
    )]
    SyncDir {
        path: PathBuf,
        dir: PathBuf,
        source: io::Error,
    },
}

impl AtomicWriteError {
    /// The file that was to be replaced.
    pub fn path(&self) -> &Path {
        match self {
            AtomicWriteError::Create { path, .. }
            | AtomicWriteError::Chown { path, .. }
            | AtomicWriteError::Chmod { path, .. }
            | AtomicWriteError::Write { path, .. }
            | AtomicWriteError::Sync { path, .. }
            | AtomicWriteError::Rename { path, .. }
            | AtomicWriteError::SyncDir { path, .. } => path,
        }
    }

    /// The system's error.
    pub fn io_error(&self) -> &io::Error {
        match self {
            AtomicWriteError::Create { source, .. }
            | AtomicWriteError::Chown { source, .. }
            | AtomicWriteError::Chmod { source, .. }
            | AtomicWriteError::Write { source, .. }
            | AtomicWriteError::Sync { source, .. }
            | AtomicWriteError::Rename { source, .. }
            | AtomicWriteError::SyncDir { source, .. } => source,
        }
    }
}

/// For callers that speak `io::Error`: the kind is the system error's, the
/// message the whole of this one (step and path included).
impl From<AtomicWriteError> for io::Error {
    fn from(e: AtomicWriteError) -> io::Error {
        io::Error::new(e.io_error().kind(), e)
    }
}

/// Replaces `path` with `bytes`: temporary file in the same directory
/// (`O_EXCL`, `opts.mode` from its creation), owner, mode, the bytes,
/// fsync, rename over `path`, fsync of the directory. A reader sees the old
/// file or the new one, and so does the boot after a power cut.
///
/// On an error the temporary file is removed and the old file is untouched,
/// except for [`AtomicWriteError::SyncDir`]: the new file is in place then,
/// only its durability is in doubt.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    opts: &WriteOptions,
) -> Result<(), AtomicWriteError> {
    replace(path, bytes, opts, &mut |_| true).map(drop)
}

/// Removes the temporary files that replacements of `path` cut by a crash
/// left in its directory; returns how many. Only for a caller that knows no
/// replacement of `path` is under way (at start, or holding its own lock):
/// it would remove a running writer's file.
pub fn remove_temp_files(path: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for tmp in temp_files(path)? {
        match fs::remove_file(tmp) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The temporary files of replacements of `path` in its directory: those
/// under way, and those a crash left.
pub fn temp_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name() else {
        return Ok(Vec::new());
    };
    let entries = match fs::read_dir(dir_of(path)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if is_temp_of(name, &entry.file_name()) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// The steps of a replacement, for the tests that stop one before a step
/// as a power cut would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Chown,
    /// Half of the bytes are written at this point; the next step writes
    /// the rest (a cut here leaves a torn temporary file).
    WriteRest,
    Sync,
    Rename,
    SyncDir,
}

/// Makes every temporary name of this process a new one.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// [`write_atomic`], asking `go` before each step: a `false` stops there,
/// leaving everything as it is, as a power cut would (`Ok(false)`).
fn replace(
    path: &Path,
    bytes: &[u8],
    opts: &WriteOptions,
    go: &mut dyn FnMut(Step) -> bool,
) -> Result<bool, AtomicWriteError> {
    if !go(Step::Create) {
        return Ok(false);
    }
    let mut file = AtomicFile::create_temp(path, opts)?;
    if !file.prepare(opts, go)? {
        file.cut();
        return Ok(false);
    }
    // In two halves only so that a test can cut between them.
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    file.write_all(first).map_err(|e| file.write_error(e))?;
    if !go(Step::WriteRest) {
        file.cut();
        return Ok(false);
    }
    file.write_all(rest).map_err(|e| file.write_error(e))?;
    file.commit_with(go)
}

/// A file replaced as a stream: the writer of a temporary file beside the
/// target, created as [`write_atomic`] creates it (`O_EXCL`, the final mode
/// and owner from the start). [`AtomicFile::commit`] syncs it, renames it
/// over the target and syncs the directory; dropped without a commit (an
/// error, a panic), it removes the temporary file, and the old file stays
/// as it was. A crash before the commit leaves the old file and at most the
/// temporary one, which [`remove_temp_files`] clears.
///
/// Writes are unbuffered: wrap it in a [`std::io::BufWriter`] for small
/// writes, and flush that before the commit.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    /// The temporary file; None once renamed, or left as a crash would.
    tmp: Option<PathBuf>,
    file: File,
}

impl AtomicFile {
    /// Creates the temporary file that will replace `path`, with the mode
    /// and owner of `opts`.
    pub fn create(path: &Path, opts: &WriteOptions) -> Result<AtomicFile, AtomicWriteError> {
        let mut file = AtomicFile::create_temp(path, opts)?;
        file.prepare(opts, &mut |_| true)?;
        Ok(file)
    }

    /// The target this file replaces.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file, open for writing (its metadata, its length).
    pub fn as_file(&self) -> &File {
        &self.file
    }

    /// The error of a failed write, for a caller that writes through
    /// [`Write`] and wants the replacement's error.
    pub fn write_error(&self, source: io::Error) -> AtomicWriteError {
        AtomicWriteError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Syncs the file, renames it over the target and syncs the directory.
    /// On an error before the rename the temporary file is removed and the
    /// old file stays; [`AtomicWriteError::SyncDir`] means the new file is
    /// in place, only its durability is in doubt.
    pub fn commit(self) -> Result<(), AtomicWriteError> {
        self.commit_with(&mut |_| true).map(drop)
    }

    /// The temporary file, new, with `opts.mode` (less the umask); from
    /// here, dropping it removes it.
    fn create_temp(path: &Path, opts: &WriteOptions) -> Result<AtomicFile, AtomicWriteError> {
        let (tmp, file) = create_temp(path, opts.mode, &mut || {
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        })
        .map_err(|source| AtomicWriteError::Create {
            path: path.to_owned(),
            source,
        })?;
        Ok(AtomicFile {
            path: path.to_owned(),
            tmp: Some(tmp),
            file,
        })
    }

    /// Its owner and exact mode, asking `go` before the owner is set;
    /// false when it said no.
    fn prepare(
        &mut self,
        opts: &WriteOptions,
        go: &mut dyn FnMut(Step) -> bool,
    ) -> Result<bool, AtomicWriteError> {
        if let Some((uid, gid)) = opts.owner {
            if !go(Step::Chown) {
                return Ok(false);
            }
            std::os::unix::fs::fchown(&self.file, Some(uid), Some(gid)).map_err(|source| {
                AtomicWriteError::Chown {
                    path: self.path.clone(),
                    uid,
                    gid,
                    source,
                }
            })?;
        }
        // After the owner (a chown may clear set-id bits), and whatever the
        // umask took away at creation: the mode asked for, exactly.
        self.file
            .set_permissions(fs::Permissions::from_mode(opts.mode))
            .map_err(|source| AtomicWriteError::Chmod {
                path: self.path.clone(),
                mode: opts.mode,
                source,
            })?;
        Ok(true)
    }

    /// [`AtomicFile::commit`], asking `go` before each step.
    fn commit_with(mut self, go: &mut dyn FnMut(Step) -> bool) -> Result<bool, AtomicWriteError> {
        let err = |step: fn(PathBuf, io::Error) -> AtomicWriteError, path: &Path| {
            let path = path.to_owned();
            move |source: io::Error| step(path, source)
        };
        if !go(Step::Sync) {
            self.cut();
            return Ok(false);
        }
        self.file.sync_all().map_err(err(
            |path, source| AtomicWriteError::Sync { path, source },
            &self.path,
        ))?;
        if !go(Step::Rename) {
            self.cut();
            return Ok(false);
        }
        let Some(tmp) = self.tmp.as_deref() else {
            return Ok(false);
        };
        fs::rename(tmp, &self.path).map_err(err(
            |path, source| AtomicWriteError::Rename { path, source },
            &self.path,
        ))?;
        // Renamed: nothing left for Drop to remove.
        self.tmp = None;
        if !go(Step::SyncDir) {
            return Ok(false);
        }
        let dir = dir_of(&self.path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| AtomicWriteError::SyncDir {
                path: self.path.clone(),
                dir: dir.to_owned(),
                source,
            })?;
        Ok(true)
    }

    /// Stops here as a power cut would: the temporary file stays.
    fn cut(&mut self) {
        self.tmp = None;
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.file.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    /// Not committed: the temporary file goes, the old file stays.
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `.<name>.<pid>.<n>.tmp` beside `path`, new (`O_EXCL`: never an existing
/// file, never through a symlink) with `mode` (less the umask) from the
/// start. A name a crashed writer left behind is skipped for the next `n`.
fn create_temp(
    path: &Path,
    mode: u32,
    next: &mut dyn FnMut() -> u64,
) -> io::Result<(PathBuf, File)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let dir = dir_of(path);
    let mut attempts = 0;
    loop {
        let tmp = dir.join(temp_name(name, std::process::id(), next()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn temp_name(name: &OsStr, pid: u32, n: u64) -> OsString {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{pid}.{n}.tmp"));
    tmp
}

/// Whether `candidate` is a [`temp_name`] of `name`.
fn is_temp_of(name: &OsStr, candidate: &OsStr) -> bool {
    let c = candidate.as_bytes();
    let Some(rest) = c
        .strip_prefix(b".")
        .and_then(|r| r.strip_prefix(name.as_bytes()))
        .and_then(|r| r.strip_prefix(b"."))
        .and_then(|r| r.strip_suffix(b".tmp"))
    else {
        return false;
    };
    let mut parts = rest.split(|b| *b == b'.');
    let number =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    number(parts.next()) && number(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::Mutex;

    /// The umask is the process's: the tests that change it take turns.
    static UMASK: Mutex<()> = Mutex::new(());

    fn set_umask(mask: u32) -> u32 {
        // SAFETY: umask(2) only swaps the process's mask and cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) as u32 }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn replaces_the_content_and_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        write_atomic(&path, b"one\n", &WriteOptions::default()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\n");
        write_atomic(&path, b"two, longer\n", &WriteOptions::default()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two, longer\n");
        write_atomic(&path, b"", &WriteOptions::default()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert_eq!(names(dir.path()), ["config.json"]);
    }

    #[test]
    fn a_relative_path_is_replaced_in_the_current_directory() {
        assert_eq!(dir_of(Path::new("file")), Path::new("."));
        assert_eq!(dir_of(Path::new("/etc/hosts")), Path::new("/etc"));
        assert_eq!(dir_of(Path::new("/")), Path::new("."));
    }

    #[test]
    fn the_mode_is_exact_whatever_the_umask_and_from_the_start() {
        let _turn = UMASK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let old = set_umask(0);
        write_atomic(&path, b"public", &WriteOptions::default()).unwrap();
        let public = mode_of(&path);
        write_atomic(&path, b"secret", &WriteOptions::private()).unwrap();
        let private = mode_of(&path);
        // Stopped right after its creation, before anything else touched
        // it: the temporary file is private from the start, even with a
        // umask that takes nothing away.
        let me = fs::metadata(dir.path()).unwrap();
        let opts = WriteOptions::private().owner(me.uid(), me.gid());
        let cut = replace(&path, b"secret 2", &opts, &mut |s| s != Step::Chown);
        let temps: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p != &path)
            .collect();
        let temp_modes: Vec<u32> = temps.iter().map(|p| mode_of(p)).collect();
        set_umask(0o077);
        write_atomic(&path, b"shared", &WriteOptions::with_mode(0o644)).unwrap();
        let despite_umask = mode_of(&path);
        set_umask(old);
        assert_eq!(public, 0o644);
        assert_eq!(private, 0o600);
        assert!(matches!(cut, Ok(false)), "{cut:?}");
        assert_eq!(temp_modes, [0o600]);
        assert_eq!(despite_umask, 0o644);
        assert_eq!(fs::read(&path).unwrap(), b"shared");
    }

    #[test]
    fn the_owner_is_set_before_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let me = fs::metadata(dir.path()).unwrap();
        // Root may give the file away; anyone may give it to themselves.
        let (uid, gid) = if me.uid() == 0 {
            (4321, 4322)
        } else {
            (me.uid(), me.gid())
        };
        let path = dir.path().join("settings.json");
        write_atomic(&path, b"{}", &WriteOptions::private().owner(uid, gid)).unwrap();
        let md = fs::metadata(&path).unwrap();
        assert_eq!((md.uid(), md.gid()), (uid, gid));
        assert_eq!(md.permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    fn a_failure_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();

        // The directory is missing: nothing to create the file in.
        let missing = dir.path().join("no/such/dir/resolv.conf");
        let e = write_atomic(&missing, b"x", &WriteOptions::default()).unwrap_err();
        assert!(matches!(e, AtomicWriteError::Create { .. }), "{e:?}");
        assert_eq!(e.path(), missing);
        assert_eq!(e.io_error().kind(), io::ErrorKind::NotFound);
        let text = e.to_string();
        assert!(
            text.starts_with("create a temporary file to replace ")
                && text.contains("no/such/dir/resolv.conf"),
            "{text}"
        );

        // The target is a directory: the rename fails, the directory and
        // what it holds stay.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"kept").unwrap();
        let e = write_atomic(&target, b"x", &WriteOptions::default()).unwrap_err();
        assert!(matches!(e, AtomicWriteError::Rename { .. }), "{e:?}");
        assert!(e.to_string().contains("rename the new file over"), "{e}");
        assert_eq!(fs::read(target.join("inside")).unwrap(), b"kept");

        // The temporary name does not fit (the target's does): the old
        // file is untouched. Fails for root too, unlike a permission.
        let long = dir.path().join("n".repeat(250));
        fs::write(&long, b"old").unwrap();
        let e = write_atomic(&long, b"new", &WriteOptions::default()).unwrap_err();
        assert!(matches!(e, AtomicWriteError::Create { .. }), "{e:?}");
        assert_eq!(fs::read(&long).unwrap(), b"old");

        let mut expected = vec!["n".repeat(250), "taken".to_owned()];
        expected.sort();
        assert_eq!(names(dir.path()), expected);

        // As an io::Error: the system's kind, the whole message.
        let e = write_atomic(&missing, b"x", &WriteOptions::default()).unwrap_err();
        let text = e.to_string();
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(io.to_string(), text);
    }

    #[test]
    fn a_failed_chown_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        if fs::metadata(dir.path()).unwrap().uid() == 0 {
            // Root may give a file to anyone: nothing fails here.
            return;
        }
        let path = dir.path().join("offer.json");
        fs::write(&path, b"old").unwrap();
        let e = write_atomic(&path, b"new", &WriteOptions::private().owner(0, 0)).unwrap_err();
        assert!(
            matches!(e, AtomicWriteError::Chown { uid: 0, gid: 0, .. }),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("give the new "), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["offer.json"]);
    }

    /// A replacement cut before any of its steps (a power cut) leaves the
    /// old content or the new one, never another; the leftover does not
    /// stop the next replacement, and [`remove_temp_files`] clears it.
    #[test]
    fn a_replacement_cut_at_each_step_leaves_the_old_or_the_new_file() {
        let steps = [
            Step::Create,
            Step::Chown,
            Step::WriteRest,
            Step::Sync,
            Step::Rename,
            Step::SyncDir,
        ];
        let dir = tempfile::tempdir().unwrap();
        let me = fs::metadata(dir.path()).unwrap();
        let opts = WriteOptions::private().owner(me.uid(), me.gid());
        let old = vec![b'o'; 10_000];
        let new = vec![b'n'; 20_000];
        for cut in steps {
            let path = dir.path().join("state.json");
            write_atomic(&path, &old, &opts).unwrap();
            let done = replace(&path, &new, &opts, &mut |s| s != cut).unwrap();
            assert!(!done, "cut before {cut:?}");
            let expected = if cut == Step::SyncDir { &new } else { &old };
            assert_eq!(&fs::read(&path).unwrap(), expected, "cut before {cut:?}");
            write_atomic(&path, &new, &opts).unwrap();
            assert_eq!(fs::read(&path).unwrap(), new, "cut before {cut:?}");
        }
        // Leftovers of the cuts after the creation and before the rename;
        // an unrelated file stays.
        fs::write(dir.path().join(".state.json.bak"), b"mine").unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(remove_temp_files(&path).unwrap(), 4);
        assert_eq!(names(dir.path()), [".state.json.bak", "state.json"]);
        assert_eq!(remove_temp_files(&dir.path().join("none/x")).unwrap(), 0);
    }

    #[test]
    fn temporary_names_are_recognised() {
        let name = OsStr::new("config.json");
        assert!(is_temp_of(name, &temp_name(name, 1, 0)));
        assert!(is_temp_of(name, OsStr::new(".config.json.4242.17.tmp")));
        for other in [
            "config.json",
            "config.json.tmp",
            ".config.json.tmp",
            ".config.json.1.tmp",
            ".config.json.1.2.3.tmp",
            ".config.json.a.2.tmp",
            ".config.json..2.tmp",
            ".other.json.1.2.tmp",
            ".config.json.1.2.tmp.x",
        ] {
            assert!(!is_temp_of(name, OsStr::new(other)), "{other}");
        }
    }

    #[test]
    fn a_leftover_with_the_same_name_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        let stale = dir
            .path()
            .join(temp_name(OsStr::new("host_key"), std::process::id(), 7));
        fs::write(&stale, b"stale").unwrap();
        let mut seq = [7, 7, 8].into_iter();
        let (tmp, _file) = create_temp(&path, 0o600, &mut || seq.next().unwrap()).unwrap();
        assert_eq!(
            tmp,
            dir.path()
                .join(temp_name(OsStr::new("host_key"), std::process::id(), 8))
        );
        assert_eq!(fs::read(&stale).unwrap(), b"stale");
    }

    #[test]
    fn a_dropped_atomic_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.age");
        let mut file = AtomicFile::create(&path, &WriteOptions::private()).unwrap();
        file.write_all(b"half of a report").unwrap();
        assert_eq!(temp_files(&path).unwrap().len(), 1);
        drop(file);
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));

        // Over an old file: the old file stays, whole.
        fs::write(&path, b"old report").unwrap();
        let mut file = AtomicFile::create(&path, &WriteOptions::private()).unwrap();
        file.write_all(b"new").unwrap();
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"old report");
        assert_eq!(names(dir.path()), ["report.age"]);
    }

    #[test]
    fn a_committed_atomic_file_has_its_mode_and_content() {
        let _turn = UMASK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream.pcap");
        fs::write(&path, b"previous capture").unwrap();
        let me = fs::metadata(dir.path()).unwrap();
        let opts = WriteOptions::with_mode(0o640).owner(me.uid(), me.gid());
        let old = set_umask(0o077);
        let created = AtomicFile::create(&path, &opts);
        set_umask(old);
        let mut file = created.unwrap();
        assert_eq!(file.path(), path);
        // Streamed: many writes through a buffer, flushed before the commit.
        let mut expected = Vec::new();
        {
            let mut out = std::io::BufWriter::new(&mut file);
            for i in 0..10_000u32 {
                let line = format!("record {i}\n");
                out.write_all(line.as_bytes()).unwrap();
                expected.extend_from_slice(line.as_bytes());
            }
            out.flush().unwrap();
        }
        assert_eq!(
            file.as_file().metadata().unwrap().len(),
            expected.len() as u64
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            b"previous capture",
            "not before the commit"
        );
        file.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), expected);
        assert_eq!(mode_of(&path), 0o640);
        let md = fs::metadata(&path).unwrap();
        assert_eq!((md.uid(), md.gid()), (me.uid(), me.gid()));
        assert_eq!(names(dir.path()), ["upstream.pcap"]);
    }

    /// A crash (the process gone: no drop, no commit) leaves the old file
    /// whole and the temporary file, which [`remove_temp_files`] clears.
    #[test]
    fn a_crash_before_the_commit_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"old").unwrap();
        let mut file = AtomicFile::create(&path, &WriteOptions::default()).unwrap();
        file.write_all(&[b'n'; 100_000]).unwrap();
        file.as_file().sync_all().unwrap();
        std::mem::forget(file);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let left = temp_files(&path).unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(fs::metadata(&left[0]).unwrap().len(), 100_000);
        assert_eq!(remove_temp_files(&path).unwrap(), 1);
        assert_eq!(names(dir.path()), ["state.json"]);
    }

    #[test]
    fn a_failed_commit_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        let mut file = AtomicFile::create(&target, &WriteOptions::default()).unwrap();
        file.write_all(b"x").unwrap();
        let e = file.commit().unwrap_err();
        assert!(matches!(e, AtomicWriteError::Rename { .. }), "{e:?}");
        assert!(target.is_dir());
        assert_eq!(names(dir.path()), ["taken"]);
        // No directory to create the file in.
        let e =
            AtomicFile::create(&dir.path().join("none/x"), &WriteOptions::default()).unwrap_err();
        assert!(matches!(e, AtomicWriteError::Create { .. }), "{e:?}");
        assert_eq!(names(dir.path()), ["taken"]);
    }

    /// Writers of the same file at the same time each use their own
    /// temporary file: every replacement succeeds and the file is always
    /// one writer's whole content.
    #[test]
    fn concurrent_writers_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        write_atomic(&path, &[b'a'; 32 << 10], &WriteOptions::default()).unwrap();
        std::thread::scope(|s| {
            for w in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    let content = vec![b'a' + w; 32 << 10];
                    for _ in 0..40 {
                        write_atomic(path, &content, &WriteOptions::default()).unwrap();
                        let read = fs::read(path).unwrap();
                        assert_eq!(read.len(), 32 << 10);
                        assert!(read.iter().all(|b| *b == read[0]), "a mixed file");
                    }
                });
            }
        });
        assert_eq!(names(dir.path()), ["meta"]);
    }
}

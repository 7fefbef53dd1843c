//! Shared-library closure of the staged root: for every ELF file, read its
//! interpreter (PT_INTERP) and needed libraries (DT_NEEDED), find each in the
//! tree extracted from the .deb files, never on the build host, and install
//! it, recursively. The host's libraries may be a different glibc than the
//! one the debs ship; mixing them gives an image that fails only at boot.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use goblin::elf::Elf;
use thiserror::Error;

/// Where libraries are searched for, relative to the extracted tree, in
/// order (Debian's multiarch directories, then the interpreter's home).
pub const LIBRARY_DIRS: [&str; 3] = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64"];
/// Where libraries are installed in the root, named by soname.
pub const INSTALL_DIR: &str = "lib/x86_64-linux-gnu";
/// How many symlinks a lookup follows before it calls the tree broken.
const MAX_SYMLINKS: usize = 40;

/// Why the library closure could not be completed.
#[derive(Debug, Error)]
pub enum ElfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} looks like an ELF file but cannot be parsed: {source}")]
    Parse {
        path: PathBuf,
        source: goblin::error::Error,
    },
    #[error("/{binary} needs {soname}, which none of the .deb files provide (searched {dirs} in the extracted packages)", dirs = LIBRARY_DIRS.join(", "))]
    MissingLibrary { binary: String, soname: String },
    #[error("/{binary} needs the interpreter {interpreter}, which none of the .deb files provide")]
    MissingInterpreter { binary: String, interpreter: String },
    #[error("/{binary} names a library or interpreter with an unsafe path: {name:?}")]
    BadName { binary: String, name: String },
    #[error("cannot install {to}: {source}")]
    Install { to: PathBuf, source: std::io::Error },
}

/// Installs into `root` every library and interpreter that the ELF files
/// already in `root` need, taken from `extracted`. Returns the installed
/// paths, relative to `root`.
pub fn install_closure(root: &Path, extracted: &Path) -> Result<Vec<PathBuf>, ElfError> {
    let mut queue: VecDeque<PathBuf> = regular_files(root)?.into();
    let mut installed = Vec::new();
    let mut seen = BTreeSet::new();
    let mut interpreters = BTreeSet::new();
    while let Some(rel) = queue.pop_front() {
        let path = root.join(&rel);
        let Some(Dependencies {
            interpreter,
            needed,
        }) = dependencies(&path)?
        else {
            continue;
        };
        let binary = rel.to_string_lossy().into_owned();
        let bad_name = |name: &str| ElfError::BadName {
            binary: binary.clone(),
            name: name.to_string(),
        };
        if let Some(interp) = interpreter {
            // The interpreter is installed at the very path the binaries name.
            let target = relative(&interp).ok_or_else(|| bad_name(&interp))?;
            if seen.insert(target.clone()) {
                let source = resolve_in_tree(extracted, &target).ok_or_else(|| {
                    ElfError::MissingInterpreter {
                        binary: binary.clone(),
                        interpreter: interp.clone(),
                    }
                })?;
                install(&source, &root.join(&target))?;
                if let Some(name) = target.file_name() {
                    interpreters.insert(name.to_string_lossy().into_owned());
                }
                installed.push(target.clone());
                queue.push_back(target);
            }
        }
        for soname in needed {
            if soname.contains('/') || soname.is_empty() || soname.starts_with('.') {
                return Err(bad_name(&soname));
            }
            // libc names the dynamic loader as a needed library; the loader
            // answers to its soname wherever it was installed as the
            // interpreter, so a second copy would never be read.
            if interpreters.contains(&soname) {
                continue;
            }
            let target = Path::new(INSTALL_DIR).join(&soname);
            if !seen.insert(target.clone()) {
                continue;
            }
            let source = LIBRARY_DIRS
                .iter()
                .find_map(|dir| resolve_in_tree(extracted, &Path::new(dir).join(&soname)))
                .ok_or_else(|| ElfError::MissingLibrary {
                    binary: binary.clone(),
                    soname: soname.clone(),
                })?;
            install(&source, &root.join(&target))?;
            installed.push(target.clone());
            queue.push_back(target);
        }
    }
    Ok(installed)
}

/// What an ELF file needs from the dynamic loader.
struct Dependencies {
    /// PT_INTERP.
    interpreter: Option<String>,
    /// DT_NEEDED sonames.
    needed: Vec<String>,
}

/// The interpreter and DT_NEEDED entries of `path`, or `None` when it is
/// not an ELF file.
fn dependencies(path: &Path) -> Result<Option<Dependencies>, ElfError> {
    let bytes = fs::read(path).map_err(|source| ElfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let elf = Elf::parse(&bytes).map_err(|source| ElfError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let needed = elf.libraries.iter().map(|s| s.to_string()).collect();
    Ok(Some(Dependencies {
        interpreter: elf.interpreter.map(str::to_string),
        needed,
    }))
}

/// Copies the contents of `source` (a regular file after symlinks were
/// followed) to `to`, mode 0755 like Debian's libraries.
fn install(source: &Path, to: &Path) -> Result<(), ElfError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| ElfError::Install {
        to: to.to_path_buf(),
        source,
    };
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    fs::copy(source, to).map_err(err)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).map_err(err)
}

/// An absolute path inside the image as a path relative to its root; `None`
/// when it is relative or climbs with `..`.
fn relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    let rel: PathBuf = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    (!rel.as_os_str().is_empty()).then_some(rel)
}

/// Finds `rel` in the tree at `root`, following symlinks as if `root` were
/// `/`: absolute targets restart at `root`, and `..` never climbs above it.
/// `None` when it does not exist, is not a regular file, or loops.
pub fn resolve_in_tree(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, rel);
    let mut current: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            current.pop();
            continue;
        }
        current.push(part);
        let full: PathBuf = root.join(current.iter().collect::<PathBuf>());
        let meta = fs::symlink_metadata(&full).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_SYMLINKS {
                return None;
            }
            let target = fs::read_link(&full).ok()?;
            current.pop();
            if target.is_absolute() {
                current.clear();
            }
            push_components(&mut pending, &target);
        }
    }
    let full = root.join(current.iter().collect::<PathBuf>());
    fs::metadata(&full).ok()?.is_file().then_some(full)
}

/// Pushes the components of `path` onto a stack so they pop in order.
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(s) => stack.push(s.to_os_string()),
            Component::ParentDir => stack.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Regular files under `root`, relative to it, in a stable order.
fn regular_files(root: &Path) -> Result<Vec<PathBuf>, ElfError> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        let full = root.join(&dir);
        let read_err = |source| ElfError::Read {
            path: full.clone(),
            source,
        };
        let mut entries: Vec<_> = fs::read_dir(&full)
            .map_err(read_err)?
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let kind = entry.file_type().map_err(read_err)?;
            let rel = dir.join(entry.file_name());
            if kind.is_dir() {
                dirs.push(rel);
            } else if kind.is_file() {
                out.push(rel);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("lib/x86_64-linux-gnu")).unwrap();
        fs::create_dir_all(r.join("usr")).unwrap();
        fs::write(r.join("lib/x86_64-linux-gnu/libx.so.1.2"), b"x").unwrap();
        symlink("libx.so.1.2", r.join("lib/x86_64-linux-gnu/libx.so.1")).unwrap();
        // An absolute link must stay inside the tree, not reach the host.
        symlink("/lib/x86_64-linux-gnu/libx.so.1", r.join("usr/abs")).unwrap();
        symlink(
            "../../../../../lib/x86_64-linux-gnu/libx.so.1",
            r.join("usr/climb"),
        )
        .unwrap();
        symlink("loop", r.join("usr/loop")).unwrap();
        symlink("/etc/passwd", r.join("usr/host")).unwrap();

        let want = Some(r.join("lib/x86_64-linux-gnu/libx.so.1.2"));
        assert_eq!(
            resolve_in_tree(r, Path::new("lib/x86_64-linux-gnu/libx.so.1")),
            want
        );
        assert_eq!(resolve_in_tree(r, Path::new("usr/abs")), want);
        assert_eq!(resolve_in_tree(r, Path::new("usr/climb")), want);
        assert_eq!(resolve_in_tree(r, Path::new("usr/loop")), None);
        assert_eq!(resolve_in_tree(r, Path::new("usr/host")), None);
        assert_eq!(
            resolve_in_tree(r, Path::new("usr")),
            None,
            "a directory is not a library"
        );
    }

    #[test]
    fn interpreter_paths_must_be_absolute_and_plain() {
        assert_eq!(
            relative("/lib64/ld-linux-x86-64.so.2"),
            Some(PathBuf::from("lib64/ld-linux-x86-64.so.2"))
        );
        assert_eq!(relative("lib64/ld.so"), None);
        assert_eq!(relative("/lib64/../../etc/passwd"), None);
        assert_eq!(relative("/"), None);
    }
}

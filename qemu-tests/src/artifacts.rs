//! Where the build put the image, kernel and root filesystem the tests boot.

use std::path::{Path, PathBuf};

pub struct Artifacts {
    pub dir: PathBuf,
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub root: PathBuf,
    /// The kernel command line the bootloader uses (build/cmdline).
    pub cmdline: String,
}

impl Artifacts {
    /// The build directory: `GATEWAY_BUILD`, else `build/` at the workspace
    /// root. Panics with what to run when something is missing: these tests
    /// check a built image and must not pass without one.
    pub fn get() -> Artifacts {
        let dir = std::env::var_os("GATEWAY_BUILD")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../build"));
        let a = Artifacts {
            disk: dir.join("gateway.raw"),
            kernel: dir.join("bzImage"),
            root: dir.join("root.ext4"),
            cmdline: std::fs::read_to_string(dir.join("cmdline"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
            dir,
        };
        for p in [&a.disk, &a.kernel, &a.root] {
            assert!(
                p.exists(),
                "{} is missing: run `make image` (or `make test`) first",
                p.display()
            );
        }
        assert!(
            !a.cmdline.is_empty(),
            "{}/cmdline is missing: run `make image`",
            a.dir.display()
        );
        a
    }

    /// The hypervisor images of `make images`: `GATEWAY_DIST`, else `dist/`
    /// at the workspace root; `name` is the file name after
    /// `gateway-<version>` (`.ova`, `.vhd`, ...). Panics with what to run
    /// when it is missing.
    pub fn dist_file(suffix: &str) -> PathBuf {
        let dir = std::env::var_os("GATEWAY_DIST")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"));
        let p = dir.join(format!("gateway-{}{suffix}", env!("CARGO_PKG_VERSION")));
        assert!(
            p.exists(),
            "{} is missing: run `make images` (or `make test`) first",
            p.display()
        );
        p
    }

    /// A private, writable copy of the image for one test (sparse, so cheap).
    pub fn disk_copy(&self, dir: &Path) -> PathBuf {
        let out = dir.join("disk.raw");
        let st = std::process::Command::new("cp")
            .args(["--sparse=always", "--reflink=auto"])
            .arg(&self.disk)
            .arg(&out)
            .status()
            .expect("run cp");
        assert!(
            st.success(),
            "copy {} to {}",
            self.disk.display(),
            out.display()
        );
        out
    }
}

/// Copies `src` to `dst` keeping holes (a 40 GiB raw or VHD costs only its data).
pub fn copy_sparse(src: &Path, dst: &Path) {
    let st = std::process::Command::new("cp")
        .args(["--sparse=always", "--reflink=auto"])
        .arg(src)
        .arg(dst)
        .status()
        .expect("run cp");
    assert!(st.success(), "copy {} to {}", src.display(), dst.display());
}

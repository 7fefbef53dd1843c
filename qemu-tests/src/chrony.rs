//! A real NTP server for the guest: Debian's chronyd on the host's loopback,
//! which QEMU user networking shows the guest as 10.0.2.2. It serves the
//! host's time and never touches the host's clock (`-x`); it is killed when
//! dropped.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub const CHRONYD: &str = "/usr/sbin/chronyd";

pub struct Chrony {
    child: Child,
    dir: tempfile::TempDir,
}

impl Chrony {
    /// Starts chronyd serving 127.0.0.1:123 (root needed for the port).
    pub fn start() -> std::io::Result<Chrony> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().display().to_string();
        let conf = dir.path().join("chrony.conf");
        std::fs::write(
            &conf,
            format!(
                "local stratum 8\nallow all\nport 123\nbindaddress 127.0.0.1\n\
                 pidfile {p}/chronyd.pid\ndriftfile {p}/drift\ncmdport 0\nbindcmdaddress /\n"
            ),
        )?;
        let log = File::create(dir.path().join("chronyd.log"))?;
        let child = Command::new(CHRONYD)
            .args(["-d", "-x", "-u", "root", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Chrony { child, dir })
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("chronyd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Chrony {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The harness: the built `gateway-sftp` on a free loopback port with a
//! temporary state directory, and Debian's OpenSSH client (`sftp`, `ssh`)
//! signing in with a password given through `SSH_ASKPASS`. Every process
//! started here is killed by a guard, also when a test fails.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const PASSWORD: &str = "tiger-lily-42 horse";
pub const REPORT: &str = "diagnostics-20240101.tar.age";

/// Kills and reaps the child when dropped.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// Waits up to `limit`, then kills; `None` if it had to be killed.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.0.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.0 = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A state directory, a running server and a client's working directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub server: ChildGuard,
}

impl Fixture {
    /// A state directory with a report of `size` random bytes and an offer
    /// for [`PASSWORD`] valid for an hour, and the server started on it.
    pub fn with_report(size: usize) -> (Fixture, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let content = random_bytes(size);
        std::fs::create_dir_all(dir.path().join("state/report")).unwrap();
        std::fs::write(dir.path().join("state/report").join(REPORT), &content).unwrap();
        write_offer(
            &dir.path().join("state"),
            PASSWORD,
            now_unix() + 3600,
            REPORT,
        );
        std::fs::create_dir_all(dir.path().join("client")).unwrap();
        let askpass = dir.path().join("askpass.sh");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{PASSWORD}'\n")).unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut fixture = Fixture {
            dir,
            port: 0,
            server: ChildGuard(None),
        };
        fixture.start();
        (fixture, content)
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// (Re)starts the server on a new free port and waits until it accepts.
    pub fn start(&mut self) {
        self.port = free_port();
        // In the state directory, beside the offer: one of the files the
        // climbing tests try to reach (`../settings.json` from the root).
        let settings = self.state().join("settings.json");
        std::fs::write(
            &settings,
            format!(
                r#"{{"listen": "127.0.0.1:{}", "state_dir": "{}"}}"#,
                self.port,
                self.state().display()
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gateway-sftp"))
            .arg("--config")
            .arg(&settings)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.server = ChildGuard(Some(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ssh_answers(self.port) {
            assert!(
                Instant::now() < deadline,
                "the server did not listen:\n{}",
                self.log()
            );
            if let Some(Ok(Some(status))) = self.server.0.as_mut().map(|c| c.try_wait()) {
                panic!("the server exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client command (`/usr/bin/sftp` or `/usr/bin/ssh`) with the
    /// options every test uses; `port_flag` is `-P` for sftp, `-p` for ssh.
    pub fn client(&self, program: &str, port_flag: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(["-F", "/dev/null"])
            .args([port_flag, &self.port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "BatchMode=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=10",
            ])
            .env("SSH_ASKPASS", self.dir.path().join("askpass.sh"))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .current_dir(self.client_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `sftp -b` with these batch lines; the exit status and the
    /// output (stdout then stderr).
    pub fn sftp(&self, batch: &[&str]) -> (ExitStatus, String) {
        let file = self.dir.path().join("batch");
        std::fs::write(&file, batch.join("\n") + "\n").unwrap();
        let mut cmd = self.client("/usr/bin/sftp", "-P");
        cmd.arg("-b").arg(&file).arg("diagnostics@127.0.0.1");
        run(cmd)
    }

    /// Runs `ssh` with these extra arguments (before the destination) and
    /// `command` after it.
    pub fn ssh(&self, extra: &[&str], command: &[&str]) -> (ExitStatus, String) {
        let mut cmd = self.client("/usr/bin/ssh", "-p");
        cmd.args(extra).arg("diagnostics@127.0.0.1").args(command);
        run(cmd)
    }

    pub fn askpass_says(&self, password: &str) {
        std::fs::write(
            self.dir.path().join("askpass.sh"),
            format!("#!/bin/sh\necho '{password}'\n"),
        )
        .unwrap();
    }

    pub fn offer_exists(&self) -> bool {
        self.state().join("offer.json").exists()
    }

    pub fn report_exists(&self) -> bool {
        self.state().join("report").join(REPORT).exists()
    }
}

/// Runs a client to its end (killed after 60 s), output collected.
pub fn run(mut cmd: Command) -> (ExitStatus, String) {
    let mut guard = ChildGuard(Some(cmd.spawn().unwrap()));
    let mut stdout = guard.0.as_mut().unwrap().stdout.take().unwrap();
    let mut stderr = guard.0.as_mut().unwrap().stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = guard.wait_for(Duration::from_secs(60));
    drop(guard);
    let output = out.join().unwrap() + &err.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("the client hung (killed):\n{output}"));
    (status, output)
}

/// What PID 1 writes: a random salt and sha256(salt || password).
pub fn write_offer(state: &Path, password: &str, expires_unix: u64, file: &str) {
    let salt = random_bytes(16);
    let mut h = Sha256::new();
    h.update(&salt);
    h.update(password.as_bytes());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    std::fs::write(
        state.join("offer.json"),
        format!(
            r#"{{"user":"diagnostics","salt":"{}","password_sha256":"{}","expires_unix":{expires_unix},"file":"{file}"}}"#,
            hex(&salt),
            hex(&h.finalize())
        ),
    )
    .unwrap();
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    getrandom::fill(&mut v).unwrap();
    v
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Whether an SSH server answers on the port: its banner, not a bare
/// connect. A connect to a free port in the ephemeral range can succeed as
/// a TCP self-connection (source port = destination port) before the
/// server listens; then the clients that follow were refused.
fn ssh_answers(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if s.local_addr().ok() == s.peer_addr().ok() {
        return false;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut banner = [0u8; 4];
    s.read_exact(&mut banner).is_ok() && &banner == b"SSH-"
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

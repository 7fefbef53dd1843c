//! Test bed for host tests and the benchmark: two network namespaces joined
//! by a veth pair ("server" side 10.77.0.0/24 with one address per NTP
//! server, "client" side 10.77.0.10), real `chronyd` servers in the server
//! namespace, and a way to run code on a thread inside the client namespace.
//! Nothing leaves the namespaces. Every process and namespace is removed by
//! `Drop`, also when a test fails or panics.
//!
//! Needs root (namespaces, `ip`), `/usr/sbin/chronyd` and libfaketime.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use gateway_ntp::packet::NtpPacket;
use gateway_ntp::timestamp::NtpTimestamp;

pub const CHRONYD: &str = "/usr/sbin/chronyd";
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
pub const CLIENT_ADDR: &str = "10.77.0.10";

/// One named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Self {
        // A leftover from a killed run with a recycled pid would make `add` fail.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args...`, panicking on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Testbed {
    // Field order is drop order: processes first, then namespaces, then files.
    children: Vec<Child>,
    pub server_ns: Netns,
    pub client_ns: Netns,
    pub dir: tempfile::TempDir,
}

impl Testbed {
    /// Namespaces `ntpt-<pid>-<tag>-s` and `-c`, linked by veth.
    pub fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let server_ns = Netns::new(format!("ntpt-{pid}-{tag}-s"));
        let client_ns = Netns::new(format!("ntpt-{pid}-{tag}-c"));
        server_ns.ip(&[
            "link",
            "add",
            "v0",
            "type",
            "veth",
            "peer",
            "name",
            "v1",
            "netns",
            &client_ns.name,
        ]);
        server_ns.ip(&["link", "set", "v0", "up"]);
        client_ns.ip(&["addr", "add", &format!("{CLIENT_ADDR}/24"), "dev", "v1"]);
        client_ns.ip(&["link", "set", "v1", "up"]);
        Testbed {
            children: Vec::new(),
            server_ns,
            client_ns,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Starts `chronyd` as an NTP server (local stratum 8, its clock never
    /// touched: `-x`) on `addr`, port 123, in the server namespace. With
    /// `fake_offset`, it runs under libfaketime and serves time that far off.
    pub fn start_chrony(&mut self, addr: &str, fake_offset: Option<&str>) {
        self.server_ns
            .ip(&["addr", "add", &format!("{addr}/24"), "dev", "v0"]);
        let d = self.dir.path().join(format!("chrony-{addr}"));
        std::fs::create_dir_all(&d).unwrap();
        let conf = d.join("chrony.conf");
        std::fs::write(
            &conf,
            format!(
                "local stratum 8\nallow all\nport 123\nbindaddress {addr}\n\
                 pidfile {p}/chronyd.pid\ndriftfile {p}/drift\ncmdport 0\nbindcmdaddress /\n",
                p = d.display()
            ),
        )
        .unwrap();
        let log = File::create(d.join("chronyd.log")).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.server_ns.name,
            CHRONYD,
            "-d",
            "-x",
            "-u",
            "root",
            "-f",
        ])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        if let Some(off) = fake_offset {
            // The preload library rather than the `faketime` wrapper: the
            // wrapper forks, and killing it would leave chronyd running.
            cmd.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", off);
        }
        // `ip netns exec` execs chronyd: the child's pid is chronyd's.
        self.children.push(cmd.spawn().expect("starting chronyd"));
    }

    /// Runs `f` on a new thread inside the client namespace; sockets it
    /// creates live there.
    pub fn in_client_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.client_ns.name, f)
    }

    /// The log of the chronyd serving `addr`, for failure messages.
    pub fn chrony_log(&self, addr: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("chrony-{addr}/chronyd.log")))
            .unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::spawn(move || {
        let fd = File::open(&path).expect("opening the namespace");
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// One NTP exchange with a plain socket (call it inside a namespace): the
/// server's offset from the host clock, seconds. Used to wait for a server
/// to come up and to check what time it serves.
pub fn probe(addr: &str, port: u16) -> Option<f64> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    let to: SocketAddr = format!("{addr}:{port}").parse().ok()?;
    sock.connect(to).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let cookie = NtpTimestamp(0x5eed_0000_0000_0000 | u64::from(std::process::id()));
    let t1 = NtpTimestamp::from_system_time(SystemTime::now());
    sock.send(&NtpPacket::client_request(cookie).encode())
        .ok()?;
    let mut buf = [0u8; 128];
    let n = sock.recv(&mut buf).ok()?;
    let t4 = NtpTimestamp::from_system_time(SystemTime::now());
    let reply = NtpPacket::decode(&buf[..n])
        .ok()?
        .check_reply(cookie)
        .ok()?;
    let (offset, _) =
        gateway_ntp::sample::offset_delay(t1, reply.receive, reply.transmit, t4).ok()?;
    Some(offset)
}

/// Probes until the server answers (up to 10 s); its offset from the host.
pub fn wait_for_server(addr: &str, port: u16) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(o) = probe(addr, port) {
            return Some(o);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

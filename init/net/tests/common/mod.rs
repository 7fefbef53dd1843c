//! A two-namespace lab for the host integration tests: a client namespace
//! whose `eth0` is one end of a veth pair, and a server namespace holding
//! the other end (`srv0`, 10.77.0.1/24) and a dnsmasq DHCP server.
//!
//! Names carry the test's pid and tag, so tests run in parallel and never
//! meet; the `Lab` guard deletes both namespaces (and with them the veth
//! pair) and kills dnsmasq when dropped, a failed test included. Nothing
//! here touches the host's own interfaces or addresses.

#![allow(dead_code)] // each test binary uses a part

use std::future::Future;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_net::NetStatus;
use tokio::sync::watch;

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const DNS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 77, 0, 53), Ipv4Addr::new(10, 77, 0, 54)];

pub struct Lab {
    pub client_ns: String,
    pub server_ns: String,
    pub dir: tempfile::TempDir,
    dnsmasq: Option<Child>,
    dnsmasq_runs: u32,
}

/// Run `ip` with these arguments; panics with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        init_tracing();
        let pid = std::process::id();
        let lab = Lab {
            client_ns: format!("nett-{pid}-{tag}-cli"),
            server_ns: format!("nett-{pid}-{tag}-srv"),
            dir: tempfile::tempdir().expect("temporary directory"),
            dnsmasq: None,
            dnsmasq_runs: 0,
        };
        ip(&["netns", "add", &lab.client_ns]);
        ip(&["netns", "add", &lab.server_ns]);
        // Both ends are created inside their namespaces: no name ever
        // appears in the host's namespace.
        ip(&[
            "-n",
            &lab.client_ns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "srv0",
            "netns",
            &lab.server_ns,
        ]);
        ip(&["-n", &lab.client_ns, "link", "set", "lo", "up"]);
        ip(&["-n", &lab.server_ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &lab.server_ns,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            "srv0",
        ]);
        ip(&["-n", &lab.server_ns, "link", "set", "srv0", "up"]);
        lab
    }

    /// Start dnsmasq as the DHCP server (DNS off) handing out `range`
    /// (e.g. "10.77.0.100,10.77.0.150"), with `extra` arguments. A running
    /// one is stopped first; each run gets a fresh lease file.
    pub fn start_dnsmasq(&mut self, range: &str, extra: &[&str]) {
        self.stop_dnsmasq();
        self.dnsmasq_runs += 1;
        let leases = self
            .dir
            .path()
            .join(format!("leases.{}", self.dnsmasq_runs));
        let mut args: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            self.server_ns.clone(),
            "/usr/sbin/dnsmasq".into(),
            "--no-daemon".into(),
            "--conf-file=/dev/null".into(),
            "--port=0".into(),
            "--user=root".into(),
            "--interface=srv0".into(),
            "--bind-interfaces".into(),
            format!("--dhcp-range={range},255.255.255.0,2m"),
            format!("--dhcp-leasefile={}", leases.display()),
            "--dhcp-authoritative".into(),
            format!("--dhcp-option=option:dns-server,{},{}", DNS[0], DNS[1]),
            "--dhcp-option=option:domain-name,lab.example".into(),
            "--log-dhcp".into(),
            format!("--log-facility={}", self.dnsmasq_log_path().display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dnsmasq");
        self.dnsmasq = Some(child);
        // dnsmasq logs "DHCP, IP range ..." once it listens.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.dnsmasq_log().contains("DHCP, IP range") {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not start: {}",
                self.dnsmasq_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop_dnsmasq(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn dnsmasq_log_path(&self) -> PathBuf {
        self.dir.path().join("dnsmasq.log")
    }

    pub fn dnsmasq_log(&self) -> String {
        std::fs::read_to_string(self.dnsmasq_log_path()).unwrap_or_default()
    }

    /// `ip -4 -o addr` of the client's eth0, one "a.b.c.d/p" per address.
    pub fn client_addresses(&self) -> Vec<String> {
        ip(&[
            "-n",
            &self.client_ns,
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ])
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next().map(str::to_string)
        })
        .collect()
    }

    /// The client's IPv4 routes, one per line as `ip route` prints them.
    pub fn client_routes(&self) -> Vec<String> {
        ip(&[
            "-n",
            &self.client_ns,
            "-4",
            "route",
            "show",
            "table",
            "main",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    pub fn client_link(&self) -> String {
        ip(&["-n", &self.client_ns, "link", "show", "dev", "eth0"])
    }

    pub fn set_server_link(&self, up: bool) {
        ip(&[
            "-n",
            &self.server_ns,
            "link",
            "set",
            "srv0",
            if up { "up" } else { "down" },
        ]);
    }

    /// Run `f` on a thread inside the client namespace, on a current-thread
    /// runtime: every socket the manager opens belongs to that namespace.
    pub fn in_client<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        in_netns(&self.client_ns, f)
    }
}

/// Run `f` on a thread inside network namespace `ns`, on a current-thread
/// runtime.
pub fn in_netns<F, Fut, T>(ns: &str, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    {
        let path = format!("/run/netns/{ns}");
        let thread = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("opening the namespace");
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("entering the namespace");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(f())
        });
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_dnsmasq();
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Wait until the status satisfies `pred`; panics with the last status on
/// timeout.
pub async fn wait_for(
    status: &mut watch::Receiver<NetStatus>,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&NetStatus) -> bool,
) -> NetStatus {
    let result = tokio::time::timeout(timeout, async {
        loop {
            {
                let s = status.borrow_and_update();
                if pred(&s) {
                    return s.clone();
                }
            }
            status.changed().await.expect("manager stopped");
        }
    })
    .await;
    match result {
        Ok(s) => s,
        Err(_) => panic!(
            "timed out waiting for {what}; status: {:#?}",
            *status.borrow()
        ),
    }
}

/// ICMP destination-unreachable messages the namespace's kernel has sent
/// (`OutDestUnreachs` in /proc/net/snmp, read from inside it).
pub fn icmp_out_dest_unreachs(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()
        .expect("reading /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut icmp = text.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().unwrap_or(""), icmp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "OutDestUnreachs")
        .and_then(|(_, value)| value.parse().ok())
        .expect("OutDestUnreachs in /proc/net/snmp")
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
}

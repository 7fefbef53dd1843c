//! Debian's squid as a peer: started on a free loopback port with its own
//! configuration directory, killed when dropped. Used by the upstream tests
//! and by bench-proxy (which includes this file). Names resolve from squid's
//! own hosts file; its only name server is loopback, so nothing leaves.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Squid {
    pub port: u16,
    pub child: Child,
    /// Kept for squid's files (removed when dropped); its cache.log helps
    /// when a test fails.
    _dir: tempfile::TempDir,
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `basic_auth`: (user, password) required from clients, else open.
/// `names`: host names squid resolves to 127.0.0.1.
pub fn start_squid(basic_auth: Option<(&str, &str)>, names: &[&str]) -> Squid {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_owned();
    // squid drops to its own user: it must read these files and write its log.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let write = |name: &str, text: String| {
        let p = base.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    let d = base.display();
    let access = match basic_auth {
        Some((user, password)) => {
            let hash = Command::new("openssl")
                .args(["passwd", "-apr1", password])
                .output()
                .unwrap();
            assert!(hash.status.success(), "openssl passwd");
            write(
                "passwd",
                format!("{user}:{}", String::from_utf8_lossy(&hash.stdout)),
            );
            format!(
                "auth_param basic program /usr/lib/squid/basic_ncsa_auth {d}/passwd\n\
                 auth_param basic realm gateway-test\n\
                 acl authed proxy_auth REQUIRED\n\
                 http_access allow authed\n\
                 http_access deny all\n"
            )
        }
        None => "http_access allow all\n".to_owned(),
    };
    write(
        "hosts",
        names.iter().map(|n| format!("127.0.0.1 {n}\n")).collect(),
    );
    // A port found free may be taken (by another test's outgoing
    // connection) before squid binds it: then squid exits, and we try
    // again on another port.
    for _attempt in 0..5 {
        let port = free_port();
        write(
            "squid.conf",
            format!(
                "http_port 127.0.0.1:{port}\n\
                 pid_filename none\n\
                 cache_log {d}/cache.log\n\
                 access_log stdio:/dev/null\n\
                 cache deny all\n\
                 cache_mem 8 MB\n\
                 coredump_dir {d}\n\
                 hosts_file {d}/hosts\n\
                 dns_nameservers 127.0.0.1\n\
                 max_filedescriptors 16384\n\
                 shutdown_lifetime 0 seconds\n\
                 {access}"
            ),
        );
        let child = Command::new("/usr/sbin/squid")
            .arg("-N")
            .arg("-f")
            .arg(base.join("squid.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start squid (make deps installs it)");
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Squid {
                    port,
                    child,
                    _dir: dir,
                };
            }
            if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(base.join("cache.log")).unwrap_or_default();
        eprintln!("squid did not listen on {port}; trying another port. cache.log:\n{log}");
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("squid did not start on any of 5 ports");
}

//! The services under PID 1, from outside: the proxy unit answers a real
//! curl on the forwarded port, follows a port change without dropping an
//! open tunnel, comes back when killed, is marked failed when it keeps
//! dying and restarts on request, and runs in its sandbox.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gateway_control::protocol::{Stats, UnitStats};
use qemu_tests::{free_port, Artifacts, HostServer, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(60);
const LISTENING: &str = "selftest serial: listening on ttyS1";

/// Requests the cacheable origin answered.
static CACHEABLE_REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// A response any cache may keep for an hour.
fn cacheable(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    CACHEABLE_REQUESTS.fetch_add(1, Ordering::SeqCst);
    let _ = s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nCache-Control: max-age=3600\r\nConnection: close\r\n\r\ncached",
    );
}

fn hello(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
}

fn echo(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// curl through the proxy at `proxy_port`; the body, or curl's complaint.
fn curl(proxy_port: u16, url: &str) -> Result<String, String> {
    curl_with(proxy_port, &[], url)
}

/// curl through the proxy at `proxy_port` with `extra` options: its output,
/// or its error when it fails.
fn curl_with(proxy_port: u16, extra: &[&str], url: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-x"])
        .arg(format!("http://127.0.0.1:{proxy_port}"))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// curl until it gets a body (the unit may still be binding), for `within`.
fn curl_until(proxy_port: u16, url: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        match curl(proxy_port, url) {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => panic!("curl {url} via {proxy_port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn boot(name: &str, hostfwd: &[&str], seed: &str) -> (tempfile::TempDir, Vm) {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    // The guest may reach the host's loopback (10.0.2.2) and nothing it is
    // not told about: time and origins are given by address.
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.2 {seed} gateway.selftest=serial",
        a.cmdline
    );
    let cfg = VmConfig::new(name, &disk)
        .direct_kernel(&a.kernel, &cmdline)
        .user_net(false, hostfwd)
        .control_serial();
    (dir, Vm::start(&cfg).unwrap())
}

/// What `gatewayctl stats --json` says, through the control API.
fn stats(vm: &mut Vm) -> Stats {
    let out = vm.command("stats --json", COMMAND).unwrap();
    let json: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("| ")).collect();
    serde_json::from_str(&json.join("\n")).unwrap_or_else(|e| panic!("{e}:\n{out}"))
}

fn unit_stats<'a>(s: &'a Stats, name: &str) -> &'a UnitStats {
    s.units
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no unit {name} in {s:?}"))
}

/// The stats once a sample saw every unit of `names` running (one is
/// taken every 5 s) and eth0 traffic both ways.
fn stats_once_running(vm: &mut Vm, names: &[&str]) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = stats(vm);
        let ready = names.iter().all(|n| {
            s.units
                .iter()
                .any(|u| u.name == *n && u.state == "active" && u.memory_bytes > 0)
        }) && s
            .network
            .iter()
            .any(|n| n.name == "eth0" && n.rx_bytes > 0 && n.tx_bytes > 0);
        if ready || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A unit's memory limit as the table gives it: `percent` of the RAM the
/// kernel reports, at least `min_mib`, rounded down to a page by the
/// cgroup.
fn share(total: u64, percent: u64, min_mib: u64) -> u64 {
    (total * percent / 100).max(min_mib << 20) / 4096 * 4096
}

/// The pid in the last "unit proxy: started, pid N" line.
fn started_pid(log: &str) -> String {
    let line = log
        .lines()
        .rfind(|l| l.contains("unit proxy: started, pid "))
        .unwrap();
    line.split("pid ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn the_proxy_unit_serves_curl_and_follows_a_port_change_keeping_its_tunnels() {
    let origin = HostServer::start(hello);
    let echoes = HostServer::start(echo);
    let (old, new) = (free_port(), free_port());
    let (_d, mut vm) = boot(
        "proxy-unit",
        &[
            &format!("tcp:127.0.0.1:{old}-:1080"),
            &format!("tcp:127.0.0.1:{new}-:3128"),
        ],
        &format!(
            "gateway.hosts=origin.example.com=10.0.2.2 \
             gateway.allowed_domains=origin.example.com:{},origin.example.com:{}",
            origin.port, echoes.port
        ),
    );
    let log = vm.wait_for("unit proxy: started", BOOT).unwrap();
    let pid = started_pid(&log);
    let url = format!("http://origin.example.com:{}/", origin.port);
    assert_eq!(curl_until(old, &url, Duration::from_secs(60)), "hello");
    // A disallowed destination is refused by the unit, not by the network.
    let refused = curl(old, "http://example.org/").unwrap();
    assert!(
        refused.contains("403 Forbidden: destination example.org is not allowed"),
        "{refused}"
    );

    // An open tunnel to the echo server, through the old port.
    let mut tunnel = TcpStream::connect(("127.0.0.1", old)).unwrap();
    tunnel
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        tunnel,
        "CONNECT origin.example.com:{0} HTTP/1.1\r\nHost: origin.example.com:{0}\r\n\r\n",
        echoes.port
    )
    .unwrap();
    let mut head = [0u8; 39];
    tunnel.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 Connection established\r\n\r\n");
    let mut got = [0u8; 5];
    tunnel.write_all(b"ping1").unwrap();
    tunnel.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping1");

    let answer = vm.command("set proxy.port=3128", COMMAND).unwrap();
    assert!(answer.contains("| changed: proxy.port"), "{answer}");
    vm.wait_for("unit proxy: settings changed: reloaded (SIGHUP)", COMMAND)
        .unwrap();
    assert_eq!(curl_until(new, &url, Duration::from_secs(60)), "hello");
    assert!(curl(old, &url).is_err(), "the old port still answers");
    // The tunnel opened before the change still carries data.
    tunnel.write_all(b"ping2").unwrap();
    tunnel.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping2");
    // Reloaded, not restarted: the same process serves.
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains(&format!("| unit      proxy active: running, pid {pid}\n")),
        "{status}"
    );
}

/// Power cuts while the cache makes the appliance CA at its first start
/// (QEMU killed at three moments after the unit started): the CA is written
/// as one file, so whatever a cut left, the next boot's cache starts once,
/// stays up and exports a CA, the same one at the boot after.
#[test]
fn power_cuts_while_the_cache_makes_its_ca_leave_one_it_starts_with() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.2 gateway.selftest=serial",
        a.cmdline
    );
    let start = |name: &str| {
        let cfg = VmConfig::new(name, &disk)
            .direct_kernel(&a.kernel, &cmdline)
            .user_net(true, &[])
            .control_serial();
        let mut vm = Vm::start(&cfg).unwrap();
        vm.wait_for("unit cache: started", BOOT).unwrap();
        vm
    };
    let cuts = [0u64, 150, 500];
    for (i, delay) in cuts.iter().enumerate() {
        let mut vm = start(&format!("ca-cut-{i}"));
        std::thread::sleep(Duration::from_millis(*delay));
        vm.kill();
    }
    let fingerprint = |vm: &mut Vm| {
        let export = vm.command("ca-export", COMMAND).unwrap();
        export
            .lines()
            .find_map(|l| l.split("SHA-256 fingerprint: ").nth(1))
            .unwrap_or_else(|| panic!("no CA exported: {export}"))
            .trim()
            .to_owned()
    };
    let mut vm = start("ca-cut-after");
    vm.wait_for(LISTENING, BOOT).unwrap();
    let first = fingerprint(&mut vm);
    std::thread::sleep(Duration::from_secs(3));
    let log = vm.serial();
    assert_eq!(log.matches("unit cache: started").count(), 1, "{log}");
    vm.kill();
    let mut vm = start("ca-cut-again");
    vm.wait_for(LISTENING, BOOT).unwrap();
    assert_eq!(fingerprint(&mut vm), first);
    eprintln!(
        "power cuts: {} while the cache made its CA (at {cuts:?} ms after its start), CA {first} kept",
        cuts.len()
    );
}

/// The cache unit: a second fetch comes from its cache, and it terminates
/// TLS with a leaf signed by the appliance CA exported through gatewayctl.
#[test]
fn the_cache_unit_serves_from_its_cache_and_intercepts_tls_with_the_exported_ca() {
    let origin = HostServer::start(cacheable);
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsOrigin::start(certs.path());
    let port = free_port();
    // The TLS origin's CA, seeded as cache.origin_ca (line breaks as spaces).
    let origin_ca = std::fs::read_to_string(certs.path().join("ca.pem"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let (dir, mut vm) = boot(
        "cache-unit",
        &[&format!("tcp:127.0.0.1:{port}-:8080")],
        &format!(
            "gateway.hosts=origin.example.com=10.0.2.2 \
             gateway.allowed_domains=origin.example.com:{},origin.example.com:{} \
             gateway.cache.origin_ca=\"{origin_ca}\"",
            origin.port, tls.port
        ),
    );
    vm.wait_for("unit cache: started", BOOT).unwrap();
    let url = format!("http://origin.example.com:{}/file", origin.port);
    assert_eq!(curl_until(port, &url, Duration::from_secs(60)), "cached");
    assert_eq!(curl(port, &url).unwrap(), "cached");
    assert_eq!(
        CACHEABLE_REQUESTS.load(Ordering::SeqCst),
        1,
        "the second fetch reached the origin"
    );

    let export = vm.command("ca-export", COMMAND).unwrap();
    assert!(export.contains("! SHA-256 fingerprint: "), "{export}");
    let pem: String = export
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{export}");
    let ca = dir.path().join("appliance-ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    // The origin speaks no TLS: the cache's fetch fails (502), but only
    // after curl verified the cache's leaf for origin.example.com
    // against the exported CA.
    let cacert = ["--cacert", ca.to_str().unwrap()];
    let code = curl_with(
        port,
        &[&cacert[..], &["-o", "/dev/null", "-w", "%{http_code}"]].concat(),
        &format!("https://origin.example.com:{}/", origin.port),
    );
    assert_eq!(
        code.map_err(|e| format!("TLS to the cache: {e}")).unwrap(),
        "502"
    );
    // A TLS origin whose CA is cache.origin_ca: fetched over verified TLS by
    // the cache, served to curl over the cache's own TLS.
    let body = curl_with(
        port,
        &cacert,
        &format!("https://origin.example.com:{}/file.txt", tls.port),
    );
    assert_eq!(body.unwrap(), "from the origin over TLS\n");
    // Fetched again over TLS: a hit in the cache; with the origin gone, it
    // still comes, from the cache alone (the agents' HTTPS path end to end).
    let url = format!("https://origin.example.com:{}/file.txt", tls.port);
    let head = curl_with(port, &[&cacert[..], &["-i"]].concat(), &url).unwrap();
    assert!(head.contains("X-Cache: HIT"), "{head}");
    assert!(head.ends_with("from the origin over TLS\n"), "{head}");
    drop(tls);
    let again = curl_with(port, &[&cacert[..], &["-i"]].concat(), &url).unwrap();
    assert!(again.contains("X-Cache: HIT"), "{again}");
    assert!(again.ends_with("from the origin over TLS\n"), "{again}");
}

/// An HTTPS origin on the host: `openssl s_server -HTTP` (each file holds
/// a whole HTTP response, so it can say Content-Length and Cache-Control:
/// `-WWW` sends neither, and an unframed body is never stored) with a leaf for
/// origin.example.com signed by a CA of its own (both made a day in the
/// past, so a guest clock a little behind still finds them valid). Killed
/// when dropped.
struct TlsOrigin {
    port: u16,
    child: std::process::Child,
}

impl TlsOrigin {
    fn start(dir: &std::path::Path) -> TlsOrigin {
        let run = |args: &[&str]| {
            let out = Command::new("faketime")
                .args(["-f", "-1d", "openssl"])
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=DNS:origin.example.com\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3",
            "-subj",
            "/CN=test-origin-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=origin.example.com",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "3",
            "-extfile",
            "ext",
        ]);
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        let body = "from the origin over TLS\n";
        std::fs::write(
            www.join("file.txt"),
            format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Cache-Control: max-age=3600\r\n\r\n{body}",
                body.len()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-HTTP", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.join("leaf.pem"))
            .arg("-key")
            .arg(dir.join("leaf.key"))
            .current_dir(&www)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsOrigin { port, child }
    }
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_killed_unit_comes_back_then_fails_and_restarts_on_request_in_its_sandbox() {
    let (_d, mut vm) = boot("unit-restarts", &[], "");
    vm.wait_for("unit proxy: started", BOOT).unwrap();

    let sandbox = vm.command("proc gateway-proxy", COMMAND).unwrap();
    for expected in [
        "Uid: 101 101 101 101",
        "Gid: 101 101 101 101",
        "Groups:\n",
        "CapEff: 0000000000000000",
        "CapPrm: 0000000000000000",
        "NoNewPrivs: 1",
        "cgroup 0::/proxy",
        "Max open files 65536 65536 files",
        "mount / ro,",
        "mount /var ro,",
        "mount /run ro,",
        "mount /tmp ro,",
        "mount /dev/shm ro,",
        "mount /var/lib/units/proxy rw,nosuid,nodev,noexec",
        "pids.max 1024",
        // A quarter of its 64 MiB floor, kept under the others' pressure.
        "memory.low 16777216",
        "hidepid=invisible",
    ] {
        assert!(
            sandbox.contains(expected),
            "{expected:?} not in:\n{sandbox}"
        );
    }
    // From inside the same sandbox: nothing outside its state directory
    // can be written, the configuration and control socket are out of
    // reach, and root cannot be regained.
    let probe = vm.command("sandbox proxy", COMMAND).unwrap();
    for expected in [
        "write /etc/probe: denied (Read-only file system (os error 30))",
        "write /var/probe: denied (Read-only file system (os error 30))",
        "write /run/probe: denied (Read-only file system (os error 30))",
        "write /tmp/probe: denied (Read-only file system (os error 30))",
        "write /dev/shm/probe: denied (Read-only file system (os error 30))",
        "write /var/log/gateway/probe: denied (",
        "write /var/lib/units/proxy/probe: ALLOWED",
        "read /var/lib/gateway/config.json: denied (Permission denied (os error 13))",
        "connect /run/gateway/control.sock: denied (Permission denied (os error 13))",
        "setuid 0: denied (Operation not permitted (os error 1))",
        "no_new_privs: 1",
        // What it wrote it cannot run (noexec), PID 1's process is not in
        // its /proc (hidepid), and no namespace (seccomp, and none allowed).
        "exec /var/lib/units/proxy/probe-exec: denied (Permission denied (os error 13))",
        "read /proc/1/cmdline: denied (No such file or directory (os error 2))",
        "unshare user namespace: denied (Operation not permitted (os error 1))",
    ] {
        assert!(probe.contains(expected), "{expected:?} not in:\n{probe}");
    }
    assert_eq!(probe.matches("ALLOWED").count(), 1, "{probe}");
    // 25 % of the VM's 256 MiB, floored at 64 MiB.
    let max: u64 = sandbox
        .lines()
        .find_map(|l| l.strip_prefix("memory.max "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((60 << 20..=64 << 20).contains(&max), "memory.max {max}");
    // Reclaim starts at 90 % of it, before the OOM killer at the limit.
    let high: u64 = sandbox
        .lines()
        .find_map(|l| l.strip_prefix("memory.high "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(high, max / 100 * 90 / 4096 * 4096, "memory.high");
    // The stats, through the control API, give the same limit and the
    // memory the proxy uses under it.
    let s = stats_once_running(&mut vm, &["proxy"]);
    let proxy = unit_stats(&s, "proxy");
    assert_eq!(proxy.memory_limit_bytes, Some(max), "{proxy:?}");
    assert!(
        proxy.memory_bytes > 0 && proxy.memory_bytes < max,
        "{proxy:?}"
    );

    // Killed, it comes back (after 1, 2, 4, 8 s); the fifth quick death
    // in a row marks it failed.
    for round in 1..=5 {
        let answer = vm.command("kill gateway-proxy", COMMAND).unwrap();
        assert!(answer.starts_with("killed gateway-proxy: ["), "{answer}");
        if round < 5 {
            vm.wait_for_count("unit proxy: started", round + 1, COMMAND)
                .unwrap();
        }
    }
    let log = vm
        .wait_for("unit proxy: failed: exited 5 times in a row", COMMAND)
        .unwrap();
    assert!(
        log.contains("unit proxy: exited (killed by SIGKILL); restarting in 8 s"),
        "{log}"
    );
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| unit      proxy failed: exited 5 times in a row"),
        "{status}"
    );

    // The logs on the state partition, through the control API: init's
    // own messages, the kernel's, newest first.
    let init_log = vm.command("logs init --search unit -n 3", COMMAND).unwrap();
    assert!(
        init_log.contains("] error: unit proxy: failed: exited 5 times in a row"),
        "{init_log}"
    );
    let kernel = vm
        .command("logs kernel --search linux -n 1000", COMMAND)
        .unwrap();
    assert!(kernel.contains("Linux version 6.12"), "{kernel}");

    let answer = vm.command("restart proxy", COMMAND).unwrap();
    assert!(
        answer.contains("gatewayctl restart proxy -> exit 0"),
        "{answer}"
    );
    vm.wait_for_count("unit proxy: started", 6, COMMAND)
        .unwrap();
    assert!(vm
        .command("status", COMMAND)
        .unwrap()
        .contains("| unit      proxy active: running, pid "));
}

/// The Stats screen's figures through the control API, in a VM large
/// enough that the units' limits are their shares of RAM, not the floors.
#[test]
fn the_stats_give_the_units_memory_under_their_share_of_ram_eth0_traffic_and_disk_1() {
    const VM_MIB: u64 = 512;
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.2 gateway.selftest=serial",
        a.cmdline
    );
    let mut cfg = VmConfig::new("unit-stats", &disk)
        .direct_kernel(&a.kernel, &cmdline)
        .user_net(false, &[])
        .control_serial();
    cfg.memory_mib = VM_MIB as u32;
    let mut vm = Vm::start(&cfg).unwrap();
    vm.wait_for("unit proxy: started", BOOT).unwrap();
    vm.wait_for("unit cache: started", BOOT).unwrap();
    let s = stats_once_running(&mut vm, &["proxy", "cache"]);

    // What the kernel reports: -m less what it keeps for itself.
    let total = s.memory.total_bytes;
    assert!(
        ((VM_MIB - 64) << 20..=VM_MIB << 20).contains(&total),
        "MemTotal {total} of a {VM_MIB} MiB VM"
    );
    // The proxy: 25 % of RAM (at least 64 MiB); the cache: 40 % (at least
    // 96 MiB). At 512 MiB both are their shares.
    for (name, percent, min_mib) in [("proxy", 25, 64), ("cache", 40, 96)] {
        let u = unit_stats(&s, name);
        let limit = u.memory_limit_bytes.unwrap_or_else(|| panic!("{u:?}"));
        assert_eq!(limit, share(total, percent, min_mib), "{u:?}");
        assert!(
            (share((VM_MIB - 64) << 20, percent, 0)..=share(VM_MIB << 20, percent, 0))
                .contains(&limit),
            "{name}: {limit} is not {percent} % of a {VM_MIB} MiB VM"
        );
        assert!(limit > min_mib << 20, "{name}: the floor, not the share");
        assert!(u.memory_bytes > 0 && u.memory_bytes < limit, "{u:?}");
        assert_eq!(u.state, "active", "{u:?}");
    }
    let eth0 = s
        .network
        .iter()
        .find(|n| n.name == "eth0")
        .unwrap_or_else(|| panic!("no eth0 in {:?}", s.network));
    assert!(eth0.rx_bytes > 0 && eth0.tx_bytes > 0, "{eth0:?}");
    assert!(eth0.rx_packets > 0 && eth0.tx_packets > 0, "{eth0:?}");
    let disk1 = s
        .disks
        .iter()
        .find(|d| d.label == "Disk 1")
        .unwrap_or_else(|| panic!("no Disk 1 in {:?}", s.disks));
    assert_eq!(disk1.mount, "/var", "{disk1:?}");
    assert!(
        disk1.total_bytes > 0 && disk1.used_bytes > 0 && disk1.used_bytes < disk1.total_bytes,
        "{disk1:?}"
    );
    // The text the console's Stats screen and gatewayctl show.
    let text = vm.command("stats", COMMAND).unwrap();
    assert!(text.contains("| Disk 1    "), "{text}");
    assert!(text.contains("| unit      proxy active: cpu "), "{text}");
}

/// The robustness figure: 10,000 idle tunnels held at once, inside
/// the appliance (the build machines cap a process at 20,000 files, less
/// than a host-side test would need).
#[test]
fn the_proxy_unit_holds_ten_thousand_idle_tunnels() {
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    // Restricted networking: eth0 gets an address (the unit waits for one)
    // and the guest reaches nothing; the tunnels stay inside it.
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.2 gateway.allowed_domains=10.0.2.15:7070 gateway.selftest=serial",
        a.cmdline
    );
    let mut cfg = VmConfig::new("tunnels", &disk)
        .direct_kernel(&a.kernel, &cmdline)
        .user_net(true, &[])
        .control_serial();
    // The guest holds both ends of every tunnel too (40,000 sockets in all),
    // beside the other units: 768 MiB, of which the proxy may use 25 %.
    cfg.memory_mib = 768;
    let mut vm = Vm::start(&cfg).unwrap();
    vm.wait_for("unit proxy: started", BOOT).unwrap();
    let report = vm
        // To the guest's own eth0 address (QEMU's DHCP gives 10.0.2.15): the
        // proxy refuses loopback destinations.
        .command("tunnels 10000 7070 10.0.2.15", Duration::from_secs(900))
        .unwrap();
    eprintln!("{report}");
    assert!(report.contains("tunnels: 10000 open in "), "{report}");
    assert!(
        report.contains("tunnels: data crossed 3 of 3 probed"),
        "{report}"
    );
    assert!(report.contains("tunnels: accepted 10000"), "{report}");
    assert!(report.contains("\"active_tunnels\":10000"), "{report}");
}

//! The patch disk, from outside: a blank second disk is formatted, mounted
//! and lets patch mode on (seeded on a first boot); extended while the VM
//! is off, it is grown at the next boot; a disk holding a filesystem is not
//! formatted until the administrator says so; a third disk is ignored (and
//! noted in the status); a
//! disk below `patch.min_disk_gib` is refused with the reason; in patch
//! mode the cache keeps a large object on the disk, across a reboot.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_control::protocol::Stats;
use qemu_tests::{free_port, Artifacts, HostServer, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(60);
/// Commands sent before the guest listens on ttyS1 lose their first bytes.
const LISTENING: &str = "selftest serial: listening on ttyS1";

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A blank qcow2 disk of `size` (qemu-img's syntax: 2G).
fn blank(dir: &Path, name: &str, size: &str) -> PathBuf {
    let p = dir.join(name);
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", p.to_str().unwrap(), size],
    );
    p
}

/// The configuration of a VM booting the appliance with extra virtio disks
/// after its own, in order.
fn config(name: &str, boot_disk: &Path, disks: &[&Path], seed: &str) -> VmConfig {
    let a = Artifacts::get();
    let cmdline = format!("{} {seed} gateway.selftest=serial", a.cmdline);
    let mut cfg = VmConfig::new(name, boot_disk)
        .direct_kernel(&a.kernel, &cmdline)
        // The proxy unit waits for an address; restricted, the guest
        // reaches nothing beyond QEMU's DHCP.
        .user_net(true, &[])
        .control_serial();
    for d in disks {
        let format = if d.extension().is_some_and(|e| e == "qcow2") {
            "qcow2"
        } else {
            "raw"
        };
        cfg.extra_args.push("-drive".into());
        cfg.extra_args
            .push(format!("file={},format={format},if=virtio", d.display()));
    }
    cfg
}

/// Boots the appliance with extra virtio disks after its own, in order.
fn boot(name: &str, boot_disk: &Path, disks: &[&Path], seed: &str) -> Vm {
    Vm::start(&config(name, boot_disk, disks, seed)).unwrap()
}

fn poweroff(vm: &mut Vm) {
    vm.command("poweroff", COMMAND).unwrap();
    assert!(vm.wait_exit(BOOT).unwrap().success());
}

#[test]
fn a_blank_disk_is_formatted_for_patch_mode_and_grown_when_extended() {
    let dir = tempfile::tempdir().unwrap();
    let root = Artifacts::get().disk_copy(dir.path());
    let patch = blank(dir.path(), "patch.qcow2", "2G");
    // The first boot's seed asks for patch mode with the minimum lowered.
    let mut vm = boot(
        "disk-patch",
        &root,
        &[&patch],
        "gateway.patch.min_disk_gib=1 gateway.patch.enabled=true",
    );
    vm.wait_for(LISTENING, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| disk      patch vdb 2048 MiB: formatted; mounted at /var/lib/patch"),
        "{status}"
    );
    assert!(!status.contains("warning"), "{status}");
    let get = vm.command("get patch.enabled", COMMAND).unwrap();
    assert!(get.contains("| patch.enabled=true"), "{get}");
    // Patch mode can be turned off and on again.
    for value in ["false", "true"] {
        let r = vm
            .command(&format!("set patch.enabled={value}"), COMMAND)
            .unwrap();
        assert!(r.contains("-> exit 0"), "{r}");
    }
    // A unit sees the patch disk read-only (the cache, when it stores
    // objects there, is given it writable).
    vm.wait_for("unit proxy: started", BOOT).unwrap();
    let sandbox = vm.command("proc gateway-proxy", COMMAND).unwrap();
    assert!(sandbox.contains("mount /var/lib/patch ro,"), "{sandbox}");
    let probe = vm.command("sandbox proxy", COMMAND).unwrap();
    assert!(
        probe.contains("write /var/lib/patch/probe: denied (Read-only file system (os error 30))"),
        "{probe}"
    );
    let stats = vm.command("stats", COMMAND).unwrap();
    assert!(stats.contains("| Disk 2    "), "{stats}");
    assert!(stats.contains("(/var/lib/patch)"), "{stats}");
    poweroff(&mut vm);
    let log = vm.serial();
    assert!(log.contains("power-off: /var/lib/patch unmounted"), "{log}");
    // The units stop first, one by one, before everything else is killed.
    let units = log.find("power-off: stopping the units").unwrap();
    let stopped = log.find("unit proxy: stopped").unwrap();
    assert!(units < stopped && stopped < log.find("power-off: stopping all processes").unwrap());

    // Extended while off: grown at the next boot, still patch mode.
    run("qemu-img", &["resize", "-q", patch.to_str().unwrap(), "3G"]);
    let mut vm = boot("disk-patch-grown", &root, &[&patch], "");
    vm.wait_for(LISTENING, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| disk      patch vdb 3072 MiB: grown from 2.0 GiB to 3.0 GiB; mounted at /var/lib/patch"),
        "{status}"
    );
    let log = vm.serial();
    assert!(log.contains("patch disk vdb: checked, clean"), "{log}");
    assert!(!log.contains("formatting"), "formatted only once:\n{log}");
    poweroff(&mut vm);
}

#[test]
fn a_disk_with_a_filesystem_is_kept_until_erase_is_confirmed_and_a_third_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let root = Artifacts::get().disk_copy(dir.path());
    // Someone's data disk: an ext4 filesystem labelled "data" with a file.
    let data = dir.path().join("data.img");
    run("truncate", &["-s", "2G", data.to_str().unwrap()]);
    run(
        "mke2fs",
        &["-q", "-t", "ext4", "-L", "data", data.to_str().unwrap()],
    );
    let third = blank(dir.path(), "third.qcow2", "2G");
    let mut vm = boot(
        "disk-foreign",
        &root,
        &[&data, &third],
        "gateway.patch.min_disk_gib=1",
    );
    vm.wait_for(LISTENING, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains(
            "| disk      patch vdb 2048 MiB: holds an ext2/3/4 filesystem labelled \"data\": not formatted"
        ),
        "{status}"
    );
    assert!(
        status.contains(
            "| disk      ignored vdc 2048 MiB: ignored: the appliance uses one patch disk (vdb)"
        ),
        "{status}"
    );
    // Noted on the Info screen (control API status), apart from the
    // requirements warnings: it is not one.
    let note = "WARNING : Found a third disk vdc. The appliance uses one patch disk (vdb): the third disk is ignored";
    assert!(
        status.contains(&format!("| note      {note}\n")),
        "{status}"
    );
    let json = vm.command("status --json", COMMAND).unwrap();
    let json: Vec<&str> = json.lines().filter_map(|l| l.strip_prefix("| ")).collect();
    let parsed: gateway_control::protocol::Status = serde_json::from_str(&json.join("\n")).unwrap();
    assert!(parsed.notes.iter().any(|w| w == note), "{parsed:?}");
    assert!(!parsed.warnings.iter().any(|w| w == note), "{parsed:?}");
    let log = vm.serial();
    assert!(
        log.contains("disk vdc at pci0000:00/"),
        "the third disk is logged:\n{log}"
    );
    let r = vm.command("set patch.enabled=true", COMMAND).unwrap();
    assert!(r.contains("-> exit 1"), "{r}");
    assert!(
        r.contains("patch.enabled: the patch disk vdb is not usable: holds an ext2/3/4 filesystem"),
        "{r}"
    );
    let r = vm.command("format-patch-disk", COMMAND).unwrap();
    assert!(r.contains("-> exit 1"), "{r}");
    assert!(
        r.contains("the disk vdb holds an ext2/3/4 filesystem labelled \"data\": formatting destroys it; confirm with erase=true"),
        "{r}"
    );
    let r = vm.command("format-patch-disk --erase", COMMAND).unwrap();
    assert!(r.contains("-> exit 0"), "{r}");
    assert!(
        r.contains("| disk      patch vdb 2048 MiB: formatted; mounted at /var/lib/patch"),
        "{r}"
    );
    let r = vm.command("set patch.enabled=true", COMMAND).unwrap();
    assert!(r.contains("-> exit 0"), "{r}");
    // The third disk was never touched.
    poweroff(&mut vm);
    let out = Command::new("qemu-img")
        .args(["map", "--output=json", third.to_str().unwrap()])
        .output()
        .unwrap();
    let map = String::from_utf8_lossy(&out.stdout);
    assert!(!map.contains("\"data\": true"), "vdc was written: {map}");
}

#[test]
fn a_disk_below_the_minimum_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = Artifacts::get().disk_copy(dir.path());
    let small = blank(dir.path(), "small.qcow2", "1G");
    let mut vm = boot(
        "disk-small",
        &root,
        &[&small],
        "gateway.patch.min_disk_gib=2",
    );
    vm.wait_for(LISTENING, BOOT).unwrap();
    let status = vm.command("status", COMMAND).unwrap();
    assert!(
        status.contains("| disk      patch vdb 1024 MiB: too small: 1.0 GiB; patch mode needs at least 2 GiB (patch.min_disk_gib)"),
        "{status}"
    );
    let r = vm.command("set patch.enabled=true", COMMAND).unwrap();
    assert!(r.contains("-> exit 1"), "{r}");
    assert!(
        r.contains("patch.enabled: the patch disk vdb is too small: 1.0 GiB; patch mode needs at least 2 GiB (patch.min_disk_gib)"),
        "{r}"
    );
    poweroff(&mut vm);
}

/// The object's name, mapped by `gateway.hosts` (never an allowed domain:
/// patch mode reaches any destination) to [`ORIGIN_ADDR`].
const ORIGIN_NAME: &str = "patch-origin.example.net";
/// Where the guest finds the origin: a `guestfwd` address of QEMU's user
/// network, on port 80. Plain HTTP goes to port 80 or 443 in patch mode as
/// in cache mode (only an allowed `name:port` entry opens another), and
/// 10.0.2.2:80 would be the host's own port 80: QEMU relays each guest
/// connection to ADDR:80 to the test's origin instead (`tcp-relay`).
const ORIGIN_ADDR: &str = "10.0.2.100";
/// The object: larger than a disk tier leaves in memory (1/16 of the
/// memory tier, itself 30 % of RAM: at most 4.8 MiB for the 256 MiB VM),
/// 8 MiB and a partial last 1 MiB block.
const OBJECT_BYTES: usize = (8 << 20) + 12_345;

/// An HTTP origin on the host's loopback answering every request with one
/// cacheable object (Content-Length, `max-age=3600`) and counting the
/// requests per path. With `cut`, its first answer for each path stops after
/// that many bytes and holds the connection until the origin is dropped (a
/// fill the test cuts in the middle); later ones are whole.
struct Origin {
    requests: Arc<Mutex<HashMap<String, usize>>>,
    held: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
    server: HostServer,
}

impl Origin {
    fn start(body: Arc<Vec<u8>>) -> Origin {
        Origin::start_cut(body, None)
    }

    fn start_cut(body: Arc<Vec<u8>>, cut: Option<usize>) -> Origin {
        let requests = Arc::new(Mutex::new(HashMap::new()));
        let held = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let (counted, holding, released) = (requests.clone(), held.clone(), release.clone());
        let server =
            HostServer::start(move |s| answer(s, &body, cut, &counted, &holding, &released));
        Origin {
            requests,
            held,
            release,
            server,
        }
    }

    fn port(&self) -> u16 {
        self.server.port
    }

    /// Requests for `path`.
    fn requests_for(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests in all.
    fn requests(&self) -> usize {
        self.requests.lock().unwrap().values().sum()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        // Held answers end before the server joins its accept loop.
        self.release.store(true, Ordering::Relaxed);
    }
}

/// Reads one request head, counts it for its path and sends the object
/// (the first answer for a path only up to `cut`, then held).
fn answer(
    mut s: TcpStream,
    body: &[u8],
    cut: Option<usize>,
    counted: &Mutex<HashMap<String, usize>>,
    held: &AtomicUsize,
    release: &AtomicBool,
) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let path = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let nth = {
        let mut r = counted.lock().unwrap();
        let n = r.entry(path).or_insert(0);
        *n += 1;
        *n
    };
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nCache-Control: max-age=3600\r\nConnection: close\r\n\r\n",
        body.len()
    );
    match cut {
        Some(half) if nth == 1 => {
            let _ = s.write_all(&body[..half]);
            held.fetch_add(1, Ordering::SeqCst);
            while !release.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        _ => {
            let _ = s.write_all(body);
        }
    }
}

/// `len` bytes that do not compress (xorshift), the same every run.
fn object(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// One response through the cache at host port `port`.
struct Fetched {
    head: String,
    len: u64,
    sha256: String,
}

/// curl through the cache at `port` for `url`; the response, or curl's
/// complaint.
fn fetch(port: u16, url: &str, dir: &Path) -> Result<Fetched, String> {
    let (head, body) = (dir.join("head"), dir.join("body"));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "300", "-x"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("-D")
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .arg(url)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(Fetched {
        head: std::fs::read_to_string(&head).unwrap(),
        len: std::fs::metadata(&body).unwrap().len(),
        sha256: sha256(&body),
    })
}

/// [`fetch`] until the cache answers (it may still be binding its port).
fn fetch_until(port: u16, url: &str, dir: &Path, within: Duration) -> Fetched {
    let deadline = Instant::now() + within;
    loop {
        match fetch(port, url, dir) {
            Ok(f) => return f,
            Err(e) if Instant::now() > deadline => panic!("curl {url} via {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// What `gatewayctl stats --json` says, through the control API.
fn stats(vm: &mut Vm) -> Stats {
    let out = vm.command("stats --json", COMMAND).unwrap();
    let json: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("| ")).collect();
    serde_json::from_str(&json.join("\n")).unwrap_or_else(|e| panic!("{e}:\n{out}"))
}

/// The stats once their cache section (read with each 5 s sample) holds
/// an object on the disk tier, or after a minute.
/// The stats of a sample taken after everything the test did so far, with
/// the disk object in them. The control API answers PID 1's last sample
/// (taken every `stats::INTERVAL`): one taken during a transfer counts only
/// part of its bytes, so wait for a sample newer than the one current now,
/// which began after this call did.
fn stats_with_a_disk_object(vm: &mut Vm) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(60);
    let current = stats(vm).uptime_s;
    loop {
        let s = stats(vm);
        let fresh = s.uptime_s > current;
        if (fresh && s.cache.as_ref().is_some_and(|c| c.disk_objects > 0))
            || Instant::now() > deadline
        {
            return s;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Patch mode seeded on `patch`, the cache port forwarded to the host's
/// `port`, and the guest's only way out QEMU's relay to `origin`
/// (restricted networking).
fn patch_cache_config(
    name: &str,
    root: &Path,
    patch: &Path,
    port: u16,
    origin: &Origin,
) -> VmConfig {
    let mut cfg = config(
        name,
        root,
        &[patch],
        &format!(
            "gateway.patch.min_disk_gib=1 gateway.patch.enabled=true \
             gateway.hosts={ORIGIN_NAME}={ORIGIN_ADDR}"
        ),
    )
    .user_net(true, &[&format!("tcp:127.0.0.1:{port}-:8080")]);
    cfg.nic += &format!(
        ",guestfwd=tcp:{ORIGIN_ADDR}:80-cmd:{} 127.0.0.1:{}",
        env!("CARGO_BIN_EXE_tcp-relay"),
        origin.port()
    );
    cfg
}

/// Patch mode as an administrator sees it: a large object fetched through
/// the cache port is kept on the patch disk, shown there in the stats, and
/// still served from it, without asking the origin, after a reboot.
#[test]
fn patch_mode_serves_a_large_object_from_the_disk_tier_across_a_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let body = Arc::new(object(OBJECT_BYTES));
    let original = dir.path().join("origin.bin");
    std::fs::write(&original, &*body).unwrap();
    let origin_sha = sha256(&original);
    let origin = Origin::start(body);
    let root = Artifacts::get().disk_copy(dir.path());
    let patch = blank(dir.path(), "patch.qcow2", "2G");
    let port = free_port();
    let mut vm = Vm::start(&patch_cache_config(
        "disk-patch-cache",
        &root,
        &patch,
        port,
        &origin,
    ))
    .unwrap();
    vm.wait_for(LISTENING, BOOT).unwrap();
    // The cache waits for the patch disk, then starts with its disk tier.
    let log = vm.wait_for("unit cache: started", BOOT).unwrap();
    let mounted = log
        .find("patch disk vdb: mounted at /var/lib/patch")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(mounted < log.find("unit cache: started").unwrap(), "{log}");
    let url = format!("http://{ORIGIN_NAME}/patches/big.bin");
    let fetched = dir.path().join("fetched");
    std::fs::create_dir(&fetched).unwrap();

    // Fetched once from the origin (the client, as QEMU forwards it, comes
    // from 10.0.2.2: an agent network), then from the cache.
    let first = fetch_until(port, &url, &fetched, Duration::from_secs(120));
    assert!(first.head.starts_with("HTTP/1.1 200"), "{}", first.head);
    assert_eq!(first.len, OBJECT_BYTES as u64);
    assert_eq!(first.sha256, origin_sha);
    let second = fetch(port, &url, &fetched).unwrap();
    assert!(second.head.contains("X-Cache: HIT"), "{}", second.head);
    assert_eq!(second.sha256, origin_sha);
    assert_eq!(origin.requests(), 1, "the second fetch reached the origin");

    // On the disk tier, not in memory: its size is above what the memory
    // tier takes with a disk tier (1/16 of 30 % of the RAM the kernel has).
    let s = stats_with_a_disk_object(&mut vm);
    let cache = s
        .cache
        .clone()
        .unwrap_or_else(|| panic!("no cache in {s:?}"));
    assert!(
        OBJECT_BYTES as u64 > s.memory.total_bytes * 30 / 100 / 16,
        "{OBJECT_BYTES} bytes would stay in memory with {} bytes of RAM",
        s.memory.total_bytes
    );
    assert!(cache.disk_objects >= 1, "{cache:?}");
    assert!(cache.disk_bytes >= OBJECT_BYTES as u64, "{cache:?}");
    assert_eq!(cache.memory_objects, 0, "{cache:?}");
    assert_eq!((cache.misses, cache.hits), (1, 1), "{cache:?}");
    assert!(cache.bytes_from_cache >= OBJECT_BYTES as u64, "{cache:?}");
    let text = vm.command("stats", COMMAND).unwrap();
    assert!(text.contains("(/var/lib/patch)"), "{text}");

    // Rebooted: the tier is read back from the patch disk.
    let started = vm.serial().matches("unit cache: started").count();
    let r = vm.command("reboot", COMMAND).unwrap();
    assert!(r.contains("-> exit 0"), "{r}");
    vm.wait_for_count(LISTENING, 2, BOOT).unwrap();
    let log = vm
        .wait_for_count("unit cache: started", started + 1, BOOT)
        .unwrap();
    assert!(log.contains("reboot: /var/lib/patch unmounted"), "{log}");
    // Checked again at the second boot (the first checked it after
    // formatting), not formatted again.
    assert_eq!(
        log.matches("patch disk vdb: checked, clean").count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches(": formatting ext4").count(), 1, "{log}");
    let third = fetch_until(port, &url, &fetched, Duration::from_secs(120));
    assert!(third.head.starts_with("HTTP/1.1 200"), "{}", third.head);
    assert!(third.head.contains("X-Cache: HIT"), "{}", third.head);
    assert_eq!(third.len, OBJECT_BYTES as u64);
    assert_eq!(third.sha256, origin_sha);
    assert_eq!(
        origin.requests(),
        1,
        "the fetch after the reboot reached the origin"
    );
    let s = stats_with_a_disk_object(&mut vm);
    let cache = s
        .cache
        .clone()
        .unwrap_or_else(|| panic!("no cache in {s:?}"));
    assert!(cache.disk_bytes >= OBJECT_BYTES as u64, "{cache:?}");
    assert_eq!((cache.misses, cache.hits), (0, 1), "{cache:?}");
    assert!(cache.disk_blocks_verified >= 9, "{cache:?}");
    // The cache's access log: the agent's address, the hit.
    let access = vm
        .command(
            &format!("logs cache --search dest={ORIGIN_NAME}: -n 1"),
            COMMAND,
        )
        .unwrap();
    assert!(access.contains("access client=10.0.2.2 "), "{access}");
    assert!(access.contains("result=\"200 HIT\""), "{access}");
    poweroff(&mut vm);
}

/// Power cuts in the middle of disk-tier fills: after each, the appliance
/// boots, every unit starts, the object whose fill was cut is fetched again
/// from the origin (nothing of the cut fill is served) and then served
/// whole from the disk tier.
#[test]
fn power_cuts_during_disk_tier_fills_never_serve_a_damaged_object() {
    const CUTS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let body = Arc::new(object(OBJECT_BYTES));
    let original = dir.path().join("origin.bin");
    std::fs::write(&original, &*body).unwrap();
    let origin_sha = sha256(&original);
    let origin = Origin::start_cut(body, Some(OBJECT_BYTES / 2));
    let root = Artifacts::get().disk_copy(dir.path());
    let patch = blank(dir.path(), "patch.qcow2", "2G");
    let fetched = dir.path().join("fetched");
    std::fs::create_dir(&fetched).unwrap();
    let vm_for = |name: &str, port: u16| {
        let mut vm = Vm::start(&patch_cache_config(name, &root, &patch, port, &origin)).unwrap();
        vm.wait_for("unit cache: started", BOOT).unwrap();
        vm
    };
    let mut checked = 0;
    for cut in 0..=CUTS {
        let port = free_port();
        let mut vm = vm_for(&format!("disk-cut-{cut}"), port);
        let log = vm.serial();
        assert!(!log.contains("unit cache: failed"), "{log}");
        // The object cut at the last boot: asked of the origin again and
        // served whole, then a hit.
        if cut > 0 {
            let path = format!("/patches/cut-{}.bin", cut - 1);
            let url = format!("http://{ORIGIN_NAME}{path}");
            let again = fetch_until(port, &url, &fetched, Duration::from_secs(120));
            assert!(again.head.starts_with("HTTP/1.1 200"), "{}", again.head);
            assert_eq!(
                (again.len, again.sha256.as_str()),
                (OBJECT_BYTES as u64, origin_sha.as_str())
            );
            assert_eq!(
                origin.requests_for(&path),
                2,
                "the cut fill was served from the disk"
            );
            let hit = fetch(port, &url, &fetched).unwrap();
            assert!(hit.head.contains("X-Cache: HIT"), "{}", hit.head);
            assert_eq!(
                (hit.len, hit.sha256.as_str()),
                (OBJECT_BYTES as u64, origin_sha.as_str())
            );
            checked += 2;
        }
        if cut == CUTS {
            let s = stats_with_a_disk_object(&mut vm);
            let cache = s
                .cache
                .clone()
                .unwrap_or_else(|| panic!("no cache in {s:?}"));
            assert_eq!(cache.disk_damaged, 0, "{cache:?}");
            poweroff(&mut vm);
            break;
        }
        // A fill the origin holds half-way: the cache has written blocks of
        // it to the patch disk when the plug is pulled.
        let url = format!("http://{ORIGIN_NAME}/patches/cut-{cut}.bin");
        let held = origin.held.load(Ordering::SeqCst);
        let spawn = || {
            Command::new("curl")
                .args(["-sS", "--max-time", "120", "-o", "/dev/null", "-x"])
                .arg(format!("http://127.0.0.1:{port}"))
                .arg(&url)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        // Again while the cache is still binding its port (curl ends at once).
        let mut client = spawn();
        let deadline = Instant::now() + Duration::from_secs(120);
        while origin.held.load(Ordering::SeqCst) == held {
            assert!(Instant::now() < deadline, "the fill did not start");
            if client.try_wait().unwrap().is_some() {
                std::thread::sleep(Duration::from_millis(500));
                client = spawn();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(2));
        vm.kill();
        let _ = client.kill();
        let _ = client.wait();
    }
    eprintln!(
        "power cuts: {CUTS} during disk-tier fills, {checked} fetches of the cut objects checked"
    );
}

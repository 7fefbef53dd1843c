//! Selftests that drive the control API the way an administrator would,
//! with the real `/usr/bin/gatewayctl`, for the QEMU tests.
//!
//! `ctl`: runs the commands of `gateway.selftest.ctl` (separated by `;`) and
//! prints each command, its exit status and its output on the console.
//!
//! `serial`: the same commands, read line by line from the second serial
//! port (ttyS1, which the test harness connects to a socket); each answer
//! ends with a line `end`. A test can so act on the running appliance at
//! the moment it chooses (change a setting, kill a unit) and read the result.
//!
//! Words of our own beside gatewayctl's: `sleep N`; `wait POINTER[=VALUE]`
//! polls the status until the JSON pointer (e.g. `/time/synchronized`) is
//! true, non-empty, or equal to VALUE, for at most two minutes; `addrs`
//! prints the kernel's IPv4 addresses and routes (from /proc); `kill COMM`
//! sends SIGKILL to the processes of that name; `proc COMM` prints what the
//! kernel says of such a process (user, capabilities, no_new_privs, cgroup,
//! mounts), so a test sees a unit's sandbox from outside it; `tunnels N
//! PORT` opens N CONNECT tunnels through the proxy on 127.0.0.1:1080 to a
//! listener of its own on 127.0.0.1:PORT, checks that data crosses some of
//! them, and reports what the proxy holds (its stats, its memory) before
//! closing them.
//!
//! `burst`: changes the configuration through the control API as fast as it
//! can, printing a count every 50 writes, so a test can cut the power in the
//! middle of a save.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use gateway_control::{Client, Request};

pub fn ctl() -> ExitCode {
    let args = crate::boot::cmdline::GatewayArgs::read();
    let script = args.get("selftest.ctl").unwrap_or("status").to_owned();
    for command in script.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        for line in run(command) {
            println!("selftest ctl: {line}");
        }
    }
    println!("selftest ctl: done");
    ExitCode::SUCCESS
}

pub fn serial() -> ExitCode {
    let port = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ttyS1")
    {
        Ok(p) => p,
        Err(e) => {
            println!("selftest serial: /dev/ttyS1: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Raw: no echo of what the test sends, no CR added to our LFs.
    if let Ok(mut t) = nix::sys::termios::tcgetattr(&port) {
        nix::sys::termios::cfmakeraw(&mut t);
        let _ = nix::sys::termios::tcsetattr(&port, nix::sys::termios::SetArg::TCSANOW, &t);
    }
    let mut out = match port.try_clone() {
        Ok(o) => o,
        Err(e) => {
            println!("selftest serial: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("selftest serial: listening on ttyS1");
    let mut lines = BufReader::new(port);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) => std::thread::sleep(Duration::from_millis(100)),
            Ok(_) => {
                let command = line.trim();
                if command.is_empty() {
                    continue;
                }
                println!("selftest serial: {command}");
                let mut answer = run(command).join("\n");
                answer.push_str("\nend\n");
                let _ = out.write_all(answer.as_bytes());
            }
            Err(e) => {
                println!("selftest serial: read ttyS1: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Runs one script command; its output, one string per line.
fn run(command: &str) -> Vec<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["sleep", n] => {
            std::thread::sleep(Duration::from_secs(n.parse().unwrap_or(1)));
            vec![]
        }
        ["addrs"] => kernel_addresses(),
        ["wait", pointer] => {
            let ok = wait_status(pointer, Duration::from_secs(120));
            vec![format!(
                "wait {pointer}: {}",
                if ok { "true" } else { "timed out" }
            )]
        }
        ["kill", comm] => {
            let pids = crate::pid1::procs::pids_of(comm);
            for pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            vec![format!("killed {comm}: {pids:?}")]
        }
        ["proc", comm] => crate::pid1::procs::pids_of(comm)
            .into_iter()
            .flat_map(proc_info)
            .collect(),
        ["sandbox", unit] => super::sandbox::probe(unit),
        ["tunnels", n, port, addr] => match (n.parse(), port.parse(), addr.parse()) {
            (Ok(n), Ok(port), Ok(addr)) => super::tunnels::hold(n, port, addr),
            _ => vec!["usage: tunnels N PORT ADDR".into()],
        },
        _ => gatewayctl(command, &words),
    }
}

fn gatewayctl(command: &str, words: &[&str]) -> Vec<String> {
    match std::process::Command::new("/usr/bin/gatewayctl")
        .args(words)
        .output()
    {
        Ok(out) => {
            let mut lines = vec![format!(
                "$ gatewayctl {command} -> exit {}",
                out.status.code().unwrap_or(-1)
            )];
            lines.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| format!("| {l}")),
            );
            lines.extend(
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .map(|l| format!("! {l}")),
            );
            lines
        }
        Err(e) => vec![format!("cannot run /usr/bin/gatewayctl: {e}")],
    }
}

fn proc_info(pid: i32) -> Vec<String> {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    let mut out = vec![format!("pid {pid}")];
    for line in read("status").lines() {
        if [
            "Uid:",
            "Gid:",
            "Groups:",
            "CapEff:",
            "CapPrm:",
            "CapAmb:",
            "NoNewPrivs:",
        ]
        .iter()
        .any(|k| line.starts_with(k))
        {
            out.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    let cgroup = read("cgroup");
    out.push(format!("cgroup {}", cgroup.trim()));
    if let Some(path) = cgroup.trim().strip_prefix("0::") {
        for file in ["memory.max", "memory.high", "memory.low", "pids.max"] {
            let value =
                std::fs::read_to_string(format!("/sys/fs/cgroup{path}/{file}")).unwrap_or_default();
            out.push(format!("{file} {}", value.trim()));
        }
    }
    if let Ok(limits) = std::fs::read_to_string(format!("/proc/{pid}/limits")) {
        if let Some(l) = limits.lines().find(|l| l.starts_with("Max open files")) {
            out.push(l.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    // mountinfo: mount point (field 5) and its options (field 6); for
    // /proc also the filesystem's own (the last field, after " - ").
    for line in read("mountinfo").lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 5 && f[4] == "/proc" {
            let own = f.last().copied().unwrap_or_default();
            out.push(format!("mount /proc {} {own}", f[5]));
        }
        if f.len() > 5
            && ([
                "/",
                "/var",
                "/run",
                "/tmp",
                "/dev/shm",
                "/sys",
                "/var/lib/patch",
            ]
            .contains(&f[4])
                || f[4].starts_with("/var/lib/units"))
        {
            out.push(format!("mount {} {}", f[4], f[5]));
        }
    }
    out
}

/// The host addresses in the kernel's local table, and the routes.
fn kernel_addresses() -> Vec<String> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let mut locals = std::collections::BTreeSet::new();
    let mut last_leaf = "";
    for line in trie.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("|-- ") {
            last_leaf = rest;
        } else if t.contains("/32 host LOCAL") && !last_leaf.starts_with("127.") {
            locals.insert(last_leaf.to_owned());
        }
    }
    let mut out: Vec<String> = locals.into_iter().map(|a| format!("addr {a}")).collect();
    // /proc/net/route: hex little-endian destination, gateway and mask.
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let ip = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .map(|v| std::net::Ipv4Addr::from(v.swap_bytes()).to_string())
            .unwrap_or_default()
    };
    for line in routes.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 7 {
            out.push(format!(
                "route {} dest {} gw {} mask {}",
                f[0],
                ip(f[1]),
                ip(f[2]),
                ip(f[7])
            ));
        }
    }
    out
}

/// Polls the status until `pointer` holds true, a non-empty value, or
/// (written `POINTER=VALUE`) that value.
fn wait_status(pointer: &str, timeout: Duration) -> bool {
    let (pointer, wanted) = match pointer.split_once('=') {
        Some((p, v)) => (p, Some(v)),
        None => (pointer, None),
    };
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let value = Client::connect(
            Path::new(gateway_control::DEFAULT_SOCKET),
            Duration::from_secs(10),
        )
        .and_then(|mut c| c.call(&Request::Status))
        .ok()
        .and_then(|s| s.pointer(pointer).cloned());
        let done = match (&value, wanted) {
            (Some(serde_json::Value::String(s)), Some(w)) => s == w,
            (Some(v), Some(w)) => w.parse::<serde_json::Value>().is_ok_and(|w| *v == w),
            (Some(serde_json::Value::Bool(b)), None) => *b,
            (Some(serde_json::Value::String(s)), None) => !s.is_empty(),
            (Some(serde_json::Value::Object(_)) | Some(serde_json::Value::Number(_)), None) => true,
            _ => false,
        };
        if done {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

pub fn burst() -> ExitCode {
    let path = Path::new(gateway_control::DEFAULT_SOCKET);
    let mut client = match Client::connect(path, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            println!("selftest burst: {e}");
            return ExitCode::FAILURE;
        }
    };
    for n in 1..=100_000u32 {
        let values = [
            ("proxy.port".to_owned(), (3000 + n % 2).to_string()),
            ("dns.search".to_owned(), format!("burst{n}.example.com")),
        ];
        if let Err(e) = client.call(&Request::Set {
            values: values.into(),
        }) {
            println!("selftest burst: write {n}: {e}");
            return ExitCode::FAILURE;
        }
        if n % 50 == 0 {
            println!("selftest burst: {n} writes");
        }
    }
    ExitCode::SUCCESS
}

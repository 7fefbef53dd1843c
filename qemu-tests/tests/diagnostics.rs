//! Diagnostics in the booted appliance, from outside: an upstream capture
//! taken while the test makes traffic, then a report downloaded with
//! Debian's OpenSSH `sftp` and its one-time password through a host forward
//! of port 22, decrypted with `age` and the development support identity,
//! read with `tar` and `tcpdump`. QEMU is killed with the `Vm`; the SSH
//! clients are run to completion (or killed by their timeout) here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use qemu_tests::{free_port, Artifacts, Vm, VmConfig};

const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(120);
/// A secret the configuration holds: it must not be in the report.
const SECRET: &str = "Upstream-S3cret-9f2c";

fn identity() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../image/keys/support-dev.age")
}

/// Whether an SSH server answers on the forwarded port (its banner); with
/// nothing listening in the guest, QEMU's forward accepts then closes.
fn ssh_banner(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-2.0")
}

fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs `cmd` with a deadline; killed when it passes.
fn run(mut cmd: Command, within: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + within;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

/// `program` (OpenSSH's `sftp` or `ssh`, whose port flag is `port_flag`)
/// signing in with `password` only, given through SSH_ASKPASS (no
/// terminal, no sshpass), no host key kept.
fn openssh(program: &str, port_flag: &str, dir: &Path, port: u16, password: &str) -> Command {
    let askpass = dir.join("askpass.sh");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .args(["-F", "/dev/null", port_flag, &port.to_string()])
        .args([
            // Before sftp's -b, which otherwise means BatchMode=yes: no
            // password.
            "-o",
            "BatchMode=no",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "ConnectTimeout=60",
        ]);
    cmd
}

/// OpenSSH's `sftp` in batch mode.
fn sftp(dir: &Path, port: u16, password: &str, batch: &str) -> Output {
    let batch_file = dir.join("batch");
    std::fs::write(&batch_file, batch).unwrap();
    let mut cmd = openssh("sftp", "-P", dir, port, password);
    cmd.arg("-b").arg(&batch_file).arg("diagnostics@127.0.0.1");
    run(cmd, Duration::from_secs(180))
}

/// OpenSSH's `ssh` with `options`, running `command` (none: a shell).
fn ssh(dir: &Path, port: u16, password: &str, options: &[&str], command: &[&str]) -> Output {
    let mut cmd = openssh("ssh", "-p", dir, port, password);
    cmd.args(options).arg("diagnostics@127.0.0.1").args(command);
    run(cmd, Duration::from_secs(180))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The value after `label` on its line of a gatewayctl answer (the serial
/// selftest prefixes its lines with `| `).
fn field<'a>(answer: &'a str, label: &str) -> &'a str {
    answer
        .lines()
        .find_map(|l| l.trim_start_matches("| ").strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {label:?} in {answer}"))
}

#[test]
fn a_capture_and_a_report_are_downloaded_once_over_sftp_and_decrypt_without_secrets() {
    let (ssh_port, proxy) = (free_port(), free_port());
    // The upstream proxy: a listener on the host that QEMU's next hop
    // (10.0.2.2) forwards to, which records the head it is sent and refuses.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    let (heads_tx, heads) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for mut s in upstream.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read_exact(&mut byte).is_ok() {
                head.push(byte[0]);
            }
            let _ = heads_tx.send(String::from_utf8_lossy(&head).into_owned());
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let a = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let disk = a.disk_copy(dir.path());
    let cmdline = format!(
        "{} gateway.ntp.servers=10.0.2.2 gateway.upstream.proxy=10.0.2.2:{upstream_port} \
         gateway.upstream.user=support gateway.upstream.password={SECRET} gateway.selftest=serial",
        a.cmdline
    );
    let cfg = VmConfig::new("diagnostics", &disk)
        .direct_kernel(&a.kernel, &cmdline)
        .user_net(
            false,
            &[
                &format!("tcp:127.0.0.1:{ssh_port}-:22"),
                &format!("tcp:127.0.0.1:{proxy}-:1080"),
            ],
        )
        .control_serial();
    let mut vm = Vm::start(&cfg).unwrap();
    vm.wait_for("unit proxy: started", BOOT).unwrap();
    vm.wait_for("selftest serial: listening on ttyS1", BOOT)
        .unwrap();

    // SSH disabled (the default) and no report: nothing on port 22.
    let status = vm.command("status", COMMAND).unwrap();
    assert!(status.contains("sftp inactive"), "{status}");
    assert!(
        !ssh_banner(ssh_port),
        "an SSH server answers with no report waiting"
    );

    // A capture while the test talks to the proxy through the next hop
    // (QEMU's 10.0.2.2): a request line no other packet carries.
    let started = vm.command("capture-start --seconds 60", COMMAND).unwrap();
    assert!(started.contains("capture: running"), "{started}");
    let marker = format!("gateway-capture-{}", std::process::id());
    until("the proxy's answer", Duration::from_secs(60), || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", proxy)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut answer = String::new();
        let request = format!("GET http://{marker}.example/ HTTP/1.1\r\nHost: {marker}.example\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 403")
    });
    // An allowed destination: the proxy asks the upstream with its
    // credentials, across the captured link.
    let token = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("support:{SECRET}"))
    };
    until("the upstream's refusal", Duration::from_secs(60), || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", proxy)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
        let mut answer = String::new();
        s.write_all(b"CONNECT qualys.com:443 HTTP/1.1\r\nHost: qualys.com:443\r\n\r\n")
            .is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 502")
            && answer.contains("403")
    });
    // (The agent may have asked the upstream too: any head will do.)
    let crossed = format!("Proxy-Authorization: Basic {token}\r\n");
    let seen: Vec<String> = heads.try_iter().collect();
    assert!(
        seen.iter().any(|h| h.contains(&crossed)),
        "the credentials did not cross the link: {seen:?}"
    );
    let stopped = vm.command("capture-stop", COMMAND).unwrap();
    assert!(stopped.contains("capture: done"), "{stopped}");
    assert!(stopped.contains("next hop 10.0.2.2"), "{stopped}");

    // The report: its password is shown once, never logged.
    let made = vm.command("diagnostics-report", COMMAND).unwrap();
    let password = field(&made, "password: ").to_owned();
    let file = field(&made, "report: ").to_owned();
    assert!(made.contains("capture/upstream.pcap"), "{made}");
    until("the SFTP server", Duration::from_secs(60), || {
        ssh_banner(ssh_port)
    });

    // Signed in with the right password, no shell, no command, and nothing
    // outside the report directory; none of it spends the password (the
    // download below uses it).
    let exec = ssh(
        dir.path(),
        ssh_port,
        &password,
        &[],
        &["echo", "ran-a-command"],
    );
    assert!(!exec.status.success(), "exec worked: {}", text(&exec));
    assert!(
        !String::from_utf8_lossy(&exec.stdout).contains("ran-a-command"),
        "{}",
        text(&exec)
    );
    let shell = ssh(dir.path(), ssh_port, &password, &["-tt"], &[]);
    assert!(!shell.status.success(), "a shell started: {}", text(&shell));
    // `ls` first: the report in its listing shows the client signed in, so
    // the failure is the refusal and not a failed sign-in. The host key
    // and the offer are beside the report directory in the unit's state.
    for outside in ["host_key", "offer.json"] {
        let climb = sftp(
            dir.path(),
            ssh_port,
            &password,
            &format!("ls\nget ../{outside}\n"),
        );
        assert!(
            String::from_utf8_lossy(&climb.stdout).contains(&file),
            "not signed in: {}",
            text(&climb)
        );
        assert!(!climb.status.success(), "../{outside}: {}", text(&climb));
        assert!(!dir.path().join(outside).exists(), "{outside} downloaded");
    }
    let log = vm.command("logs sftp -n 60", COMMAND).unwrap();
    for refusal in [
        "refused a command",
        "refused a shell",
        "outside the report directory",
    ] {
        assert!(log.contains(refusal), "no {refusal:?} in the log:\n{log}");
    }

    // A wrong password, then the right one: the download.
    let wrong = sftp(
        dir.path(),
        ssh_port,
        "not-the-password",
        &format!("get {file}\n"),
    );
    assert!(!wrong.status.success(), "{}", text(&wrong));
    let got = sftp(dir.path(), ssh_port, &password, &format!("get {file}\n"));
    assert!(
        got.status.success(),
        "{}\nthe server's log:\n{}",
        text(&got),
        vm.command("logs sftp -n 40", COMMAND).unwrap()
    );
    let sealed = dir.path().join(&file);
    assert!(sealed.is_file());

    // Used once: the same password fails, and the server stops.
    let again = sftp(
        dir.path(),
        ssh_port,
        &password,
        &format!("get {file} again\n"),
    );
    assert!(!again.status.success(), "{}", text(&again));
    assert!(!dir.path().join("again").exists());
    until("the SFTP server to stop", Duration::from_secs(60), || {
        vm.command("status", COMMAND)
            .unwrap()
            .contains("sftp inactive")
    });
    assert!(
        !ssh_banner(ssh_port),
        "port 22 still answers after the download"
    );

    // ssh.enabled: the server runs without a report, and stops again.
    let set = vm.command("set ssh.enabled=true", COMMAND).unwrap();
    assert!(set.contains("exit 0"), "{set}");
    until(
        "the SFTP server with SSH enabled",
        Duration::from_secs(60),
        || ssh_banner(ssh_port),
    );
    let refused = sftp(dir.path(), ssh_port, &password, "ls\n");
    assert!(!refused.status.success(), "{}", text(&refused));
    vm.command("set ssh.enabled=false", COMMAND).unwrap();
    until(
        "port 22 closed with SSH disabled",
        Duration::from_secs(60),
        || !ssh_banner(ssh_port),
    );

    // It decrypts with the support identity and holds what support needs.
    let out = dir.path().join("report");
    std::fs::create_dir(&out).unwrap();
    let mut age = Command::new("age");
    age.args(["-d", "-i"])
        .arg(identity())
        .arg("-o")
        .arg(dir.path().join("report.tar.gz"))
        .arg(&sealed);
    let decrypted = run(age, Duration::from_secs(60));
    assert!(decrypted.status.success(), "{}", text(&decrypted));
    let mut tar = Command::new("tar");
    tar.arg("-xzf")
        .arg(dir.path().join("report.tar.gz"))
        .arg("-C")
        .arg(&out);
    let untarred = run(tar, Duration::from_secs(60));
    assert!(untarred.status.success(), "{}", text(&untarred));
    for expected in [
        "README.txt",
        "config.txt",
        "status.json",
        "stats.json",
        "logs/init.log",
        "logs/proxy.log",
        "logs/kernel.log",
        "capture/upstream.pcap",
    ] {
        assert!(out.join(expected).is_file(), "{expected} missing");
    }
    let config = std::fs::read_to_string(out.join("config.txt")).unwrap();
    assert!(config.contains("upstream.user=support\n"), "{config}");
    assert!(config.contains("upstream.password=********\n"), "{config}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("status.json")).unwrap()).unwrap();
    assert!(status["units"].is_array(), "{status}");
    // No secret anywhere: the upstream password, the one-time password,
    // a private key.
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            for secret in [SECRET, token.as_str(), password.as_str(), "PRIVATE KEY"] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds {secret:?}",
                    p.display()
                );
            }
        }
    }

    // The capture opens in tcpdump and holds the test's request.
    let mut tcpdump = Command::new("tcpdump");
    tcpdump
        .args(["-nn", "-A", "-r"])
        .arg(out.join("capture/upstream.pcap"));
    let read = run(tcpdump, Duration::from_secs(60));
    assert!(read.status.success(), "{}", text(&read));
    let dump = String::from_utf8_lossy(&read.stdout);
    assert!(
        dump.contains(&marker),
        "the capture lacks the request: {dump}"
    );
    assert!(dump.contains(".1080"), "{dump}");
}

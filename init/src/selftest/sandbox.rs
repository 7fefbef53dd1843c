//! The sandbox from inside: `sandbox UNIT` (a `serial` command) starts
//! `init selftest escape` in the unit's real sandbox (same user, mount
//! namespace, no_new_privs, capabilities; no cgroup), and the probe tries
//! what a compromised service would: write outside its state directory,
//! read the configuration, reach the control socket, become root, run a
//! program it wrote, see PID 1's process, make a user namespace.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use crate::units::sandbox::Prepared;
use crate::units::table::unit;

/// The serial command: the probe's report, one line each.
pub fn probe(name: &str) -> Vec<String> {
    let Some(spec) = unit(name) else {
        return vec![format!("sandbox: no unit {name:?}")];
    };
    let prepared = match Prepared::new(spec, &[], None) {
        Ok(p) => p,
        Err(e) => return vec![format!("sandbox: {e}")],
    };
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(["selftest", "escape"])
        .env_clear()
        .current_dir(&prepared.state_path)
        .stdin(Stdio::null());
    // SAFETY: `enter` only makes system calls on data prepared before the
    // fork (see its documentation).
    unsafe {
        cmd.pre_exec(move || prepared.enter());
    }
    match cmd.output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
            .map(str::to_owned)
            .collect(),
        Err(e) => vec![format!("sandbox: start the probe: {e}")],
    }
}

fn outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ALLOWED".to_owned(),
        Err(e) => format!("denied ({e})"),
    }
}

/// `init selftest escape`, run inside a unit's sandbox.
pub fn escape() -> ExitCode {
    let mut out = std::io::stdout().lock();
    let own = std::env::current_dir().unwrap_or_default();
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&own);
        let _ = writeln!(
            out,
            "running as {}:{} in {}: {}",
            nix::unistd::getuid(),
            nix::unistd::getgid(),
            own.display(),
            match m {
                Ok(m) => format!("mode {:o} owner {}:{}", m.mode() & 0o7777, m.uid(), m.gid()),
                Err(e) => e.to_string(),
            }
        );
    }
    let mut targets: Vec<String> = [
        "/probe",
        "/etc/probe",
        "/var/probe",
        "/var/lib/gateway/probe",
        "/var/log/gateway/probe",
        "/var/lib/patch/probe",
        "/run/probe",
        "/run/gateway/probe",
        "/tmp/probe",
        "/dev/shm/probe",
        "/sys/fs/cgroup/probe",
    ]
    .iter()
    .filter(|p| Path::new(p).parent().is_some_and(Path::exists))
    .map(|p| p.to_string())
    .collect();
    targets.push(own.join("probe").display().to_string());
    for path in targets {
        let r = std::fs::write(&path, b"x");
        let _ = std::fs::remove_file(&path);
        let _ = writeln!(out, "write {path}: {}", outcome(r));
    }
    let r = std::fs::read("/var/lib/gateway/config.json");
    let _ = writeln!(out, "read /var/lib/gateway/config.json: {}", outcome(r));
    let r = std::os::unix::net::UnixStream::connect(gateway_control::DEFAULT_SOCKET);
    let _ = writeln!(
        out,
        "connect {}: {}",
        gateway_control::DEFAULT_SOCKET,
        outcome(r)
    );
    let r = nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).map_err(std::io::Error::from);
    let _ = writeln!(out, "setuid 0: {}", outcome(r));
    // A program written where the unit may write: refused to run (noexec
    // answers EACCES; without it the kernel would try and say ENOEXEC).
    let program = own.join("probe-exec");
    let r = std::fs::write(&program, b"\x7fELF not really")
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
        })
        .and_then(|()| Command::new(&program).status());
    let _ = std::fs::remove_file(&program);
    let _ = writeln!(out, "exec {}: {}", program.display(), outcome(r));
    let r = std::fs::read("/proc/1/cmdline");
    let _ = writeln!(out, "read /proc/1/cmdline: {}", outcome(r));
    // SAFETY: unshare(2) with a flag: it changes only this process.
    let r = if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    let _ = writeln!(out, "unshare user namespace: {}", outcome(r));
    // SAFETY: prctl(PR_GET_NO_NEW_PRIVS) reads a flag of this process.
    let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    let _ = writeln!(out, "no_new_privs: {nnp}");
    ExitCode::SUCCESS
}

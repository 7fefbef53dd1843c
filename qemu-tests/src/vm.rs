//! One QEMU virtual machine: started with the disk on a chosen controller,
//! its serial console written to a log file, its QMP socket connected, and
//! killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::qmp::{Qmp, QmpError};

/// The disk controller the boot disk hangs on, as hypervisors attach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// virtio-blk (KVM, Proxmox).
    Virtio,
    /// IDE on the PIIX controller (Hyper-V Generation 1).
    Ide,
    /// LSI Logic SAS 1068 (VMware "LSI Logic SAS"; Linux mptsas).
    Mptsas,
    /// VMware Paravirtual SCSI.
    Pvscsi,
    /// SATA on an AHCI controller (VMware's SATA disks, many KVM defaults).
    Sata,
    /// NVMe (VMware's NVMe controller, cloud hypervisors).
    Nvme,
}

#[derive(Debug, Clone)]
pub struct VmConfig {
    pub name: String,
    pub disk: PathBuf,
    /// QEMU's name for the disk's format: `raw`, `vmdk`, `vpc` (VHD), `qcow2`.
    pub format: String,
    /// Writes go to a temporary overlay, the disk file stays as it is (for
    /// formats QEMU reads but does not write, such as stream-optimized VMDK).
    pub snapshot: bool,
    /// An ISO image in an IDE CD-ROM drive.
    pub cdrom: Option<PathBuf>,
    pub bus: Bus,
    pub memory_mib: u32,
    /// Virtual CPUs: 2 unless a test asks for 1, as `make run` and every
    /// hypervisor give two or more, and races in PID 1 and the services
    /// show only when two threads of the guest run at once.
    pub cpus: u32,
    /// Boot this kernel with this command line instead of the disk's
    /// bootloader (the disk stays attached as the root disk).
    pub direct_kernel: Option<(PathBuf, String)>,
    /// UEFI firmware (OVMF) instead of SeaBIOS.
    pub uefi: bool,
    /// The `-nic` option: `none` unless the test asks for a network.
    pub nic: String,
    /// A second serial port (the guest's ttyS1) on a socket, for
    /// [`Vm::command`] (the guest runs `gateway.selftest=serial`).
    pub control_serial: bool,
    /// The first serial port (ttyS0, the console's) on a socket as well as
    /// in the log, so a test can type on it ([`Vm::serial_console`]).
    pub serial_console: bool,
    pub extra_args: Vec<String>,
}

impl VmConfig {
    pub fn new(name: &str, disk: &Path) -> VmConfig {
        VmConfig {
            name: name.into(),
            disk: disk.into(),
            format: "raw".into(),
            snapshot: false,
            cdrom: None,
            bus: Bus::Virtio,
            memory_mib: 256,
            cpus: 2,
            direct_kernel: None,
            uefi: false,
            nic: "none".into(),
            control_serial: false,
            serial_console: false,
            extra_args: Vec::new(),
        }
    }

    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    pub fn bus(mut self, bus: Bus) -> Self {
        self.bus = bus;
        self
    }

    /// The disk's format as QEMU names it (`raw` unless told).
    pub fn format(mut self, format: &str) -> Self {
        self.format = format.into();
        self
    }

    /// Keep the disk file unchanged: the guest writes to a temporary overlay.
    pub fn snapshot(mut self) -> Self {
        self.snapshot = true;
        self
    }

    /// Puts `iso` in a CD-ROM drive on the secondary IDE channel.
    pub fn cdrom(mut self, iso: &Path) -> Self {
        self.cdrom = Some(iso.into());
        self
    }

    pub fn uefi(mut self) -> Self {
        self.uefi = true;
        self
    }

    /// QEMU user-mode networking on a virtio NIC: the guest's eth0 gets
    /// 10.0.2.15 by DHCP, 10.0.2.2 is the host's loopback, 10.0.2.3 a DNS
    /// forwarder. `restrict` isolates the guest: it reaches nothing, not even
    /// the host, except through `hostfwd` (`tcp::HOSTPORT-:GUESTPORT`).
    /// Without it the guest reaches the host's loopback at 10.0.2.2, and
    /// everything else: a test that lifts it must give the guest only
    /// addresses on 10.0.2.2 (no DNS names, no default time servers).
    /// QEMU's DHCP server sends no router and no DNS option when restricted.
    pub fn user_net(mut self, restrict: bool, hostfwd: &[&str]) -> Self {
        let mut nic = format!(
            "user,model=virtio-net-pci,restrict={}",
            if restrict { "on" } else { "off" }
        );
        for f in hostfwd {
            nic += &format!(",hostfwd={f}");
        }
        self.nic = nic;
        self
    }

    pub fn control_serial(mut self) -> Self {
        self.control_serial = true;
        self
    }

    pub fn serial_console(mut self) -> Self {
        self.serial_console = true;
        self
    }

    pub fn direct_kernel(mut self, kernel: &Path, cmdline: &str) -> Self {
        self.direct_kernel = Some((kernel.into(), cmdline.into()));
        self
    }

    fn disk_args(&self) -> Vec<String> {
        let mut file = format!("file={},format={}", self.disk.display(), self.format);
        // With -kernel, QEMU's linuxboot option ROM takes boot index 0.
        let boot = if self.direct_kernel.is_some() {
            ""
        } else {
            ",bootindex=0"
        };
        if self.snapshot {
            file += ",snapshot=on";
        }
        let scsi = |controller: &str, disk_opts: &str| {
            vec![
                "-device".into(),
                format!("{controller},id=scsi0"),
                "-drive".into(),
                format!("{file},if=none,id=disk0"),
                "-device".into(),
                format!("scsi-hd,drive=disk0,bus=scsi0.0{boot}{disk_opts}"),
            ]
        };
        let mut args: Vec<String> = match self.bus {
            Bus::Virtio => vec!["-drive".into(), format!("{file},if=virtio")],
            Bus::Ide => vec!["-drive".into(), format!("{file},if=ide")],
            // A SAS disk has a SAS address (its WWN); QEMU's default is 0,
            // and Linux's mptsas ignores a device whose address is 0.
            Bus::Mptsas => scsi("mptsas1068", ",wwn=0x5000c50000000001"),
            Bus::Pvscsi => scsi("pvscsi", ""),
            Bus::Sata => vec![
                "-device".into(),
                "ahci,id=ahci0".into(),
                "-drive".into(),
                format!("{file},if=none,id=disk0"),
                "-device".into(),
                format!("ide-hd,drive=disk0,bus=ahci0.0{boot}"),
            ],
            Bus::Nvme => vec![
                "-drive".into(),
                format!("{file},if=none,id=disk0"),
                "-device".into(),
                format!("nvme,drive=disk0,serial=gateway0{boot}"),
            ],
        };
        if let Some(iso) = &self.cdrom {
            args.push("-drive".into());
            args.push(format!(
                "file={},format=raw,if=ide,index=2,media=cdrom,readonly=on",
                iso.display()
            ));
        }
        args
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("start qemu-system-x86_64: {0}")]
    Spawn(std::io::Error),
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("{name}: {what} not seen within {timeout:?}; serial log {log}:\n{tail}")]
    Timeout {
        name: String,
        what: String,
        timeout: Duration,
        log: String,
        tail: String,
    },
    #[error("{name}: control serial: {what}")]
    Control { name: String, what: String },
    #[error("{name}: QEMU exited ({status}) while waiting for {what}; serial log {log}:\n{tail}")]
    Exited {
        name: String,
        what: String,
        status: ExitStatus,
        log: String,
        tail: String,
    },
}

pub struct Vm {
    name: String,
    control: Option<(
        std::os::unix::net::UnixStream,
        std::io::BufReader<std::os::unix::net::UnixStream>,
    )>,
    child: Child,
    qmp: Qmp,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Debian's OVMF (package ovmf): UEFI firmware for QEMU.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Where serial logs are kept: target/qemu-tests/.
pub fn log_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/qemu-tests");
    let _ = std::fs::create_dir_all(&d);
    d
}

impl Vm {
    pub fn start(cfg: &VmConfig) -> Result<Vm, VmError> {
        let dir = tempfile::tempdir().map_err(VmError::Spawn)?;
        let qmp_path = dir.path().join("qmp.sock");
        let log = log_dir().join(format!("{}.serial.log", cfg.name));
        let _ = std::fs::remove_file(&log);
        let accel = std::env::var("ACCEL").unwrap_or_else(|_| "tcg".into());
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-machine",
            "pc",
            "-accel",
            &accel,
            "-smp",
            &cfg.cpus.to_string(),
            "-m",
            &cfg.memory_mib.to_string(),
        ])
        .args(["-display", "none", "-monitor", "none", "-nic", &cfg.nic])
        .args(if cfg.serial_console {
            vec![
                "-chardev".to_owned(),
                format!(
                    "socket,id=con0,path={},server=on,wait=off,logfile={}",
                    dir.path().join("console.sock").display(),
                    log.display()
                ),
                "-serial".to_owned(),
                "chardev:con0".to_owned(),
            ]
        } else {
            vec!["-serial".to_owned(), format!("file:{}", log.display())]
        })
        .args(if cfg.control_serial {
            vec![
                "-chardev".to_owned(),
                format!(
                    "socket,id=ctl0,path={},server=on,wait=off",
                    dir.path().join("ctl.sock").display()
                ),
                "-serial".to_owned(),
                "chardev:ctl0".to_owned(),
            ]
        } else {
            vec![]
        })
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp_path.display()))
        .args(cfg.disk_args())
        .args(&cfg.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if cfg.uefi {
            // The variable store is written by the firmware: each VM its own copy.
            let vars = dir.path().join("OVMF_VARS.fd");
            std::fs::copy(OVMF_VARS, &vars).map_err(VmError::Spawn)?;
            cmd.arg("-drive")
                .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,file={}", vars.display()));
        }
        if let Some((kernel, cmdline)) = &cfg.direct_kernel {
            cmd.arg("-kernel").arg(kernel).arg("-append").arg(cmdline);
        }
        let mut child = cmd.spawn().map_err(VmError::Spawn)?;
        let qmp = match Qmp::connect(&qmp_path, Duration::from_secs(20)) {
            Ok(q) => q,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
        Ok(Vm {
            control: None,
            name: cfg.name.clone(),
            child,
            qmp,
            log,
            _dir: dir,
        })
    }

    pub fn serial(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn tail(&self) -> String {
        let s = self.serial();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until `pattern` appears at least `count` times on the serial
    /// console; returns the whole log then.
    pub fn wait_for_count(
        &mut self,
        pattern: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<String, VmError> {
        let what = if count == 1 {
            format!("{pattern:?}")
        } else {
            format!("{pattern:?} x{count}")
        };
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.serial();
            if s.matches(pattern).count() >= count {
                return Ok(s);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(VmError::Exited {
                    name: self.name.clone(),
                    what,
                    status,
                    log: self.log.display().to_string(),
                    tail: self.tail(),
                });
            }
            if Instant::now() >= deadline {
                return Err(VmError::Timeout {
                    name: self.name.clone(),
                    what,
                    timeout,
                    log: self.log.display().to_string(),
                    tail: self.tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> Result<String, VmError> {
        self.wait_for_count(pattern, 1, timeout)
    }

    /// Presses the ACPI power button.
    pub fn power_button(&mut self) -> Result<(), VmError> {
        self.qmp.execute("system_powerdown", json!({}))?;
        Ok(())
    }

    /// Ctrl-Alt-Del on the VM's keyboard.
    pub fn ctrl_alt_del(&mut self) -> Result<(), VmError> {
        let keys: Vec<_> = ["ctrl", "alt", "delete"]
            .iter()
            .map(|k| json!({"type": "qcode", "data": k}))
            .collect();
        self.qmp.execute("send-key", json!({ "keys": keys }))?;
        Ok(())
    }

    /// Starts a VM made with QEMU's `-S` (in `extra_args`): its CPUs run
    /// from here.
    pub fn resume(&mut self) -> Result<(), VmError> {
        self.qmp.execute("cont", json!({}))?;
        Ok(())
    }

    /// Presses (`down`) or releases one key of the VM's keyboard, by QEMU's
    /// name for it (`shift`, `a`, `ret`).
    pub fn key_event(&mut self, qcode: &str, down: bool) -> Result<(), VmError> {
        let key = json!({"type": "qcode", "data": qcode});
        let event = json!({"type": "key", "data": {"down": down, "key": key}});
        self.qmp
            .execute("input-send-event", json!({ "events": [event] }))?;
        Ok(())
    }

    /// Types `text` on the VM's keyboard: lowercase letters, digits, space,
    /// `.`, `=`, `-`, `/` and newline (Enter).
    pub fn type_text(&mut self, text: &str) -> Result<(), VmError> {
        for c in text.chars() {
            let qcode = match c {
                'a'..='z' | '0'..='9' => c.to_string(),
                ' ' => "spc".into(),
                '.' => "dot".into(),
                '=' => "equal".into(),
                '-' => "minus".into(),
                '/' => "slash".into(),
                '\n' => "ret".into(),
                _ => panic!("type_text: no key for {c:?}"),
            };
            let key = json!({"type": "qcode", "data": qcode});
            self.qmp.execute("send-key", json!({ "keys": [key] }))?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Sends one command line to the guest's `serial` selftest on ttyS1 and
    /// returns its answer (the lines before `end`).
    pub fn command(&mut self, line: &str, timeout: Duration) -> Result<String, VmError> {
        use std::io::{BufRead, Write};
        let fail = |what: String| VmError::Control {
            name: self.name.clone(),
            what,
        };
        if self.control.is_none() {
            let path = self._dir.path().join("ctl.sock");
            let stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
                fail(format!(
                    "connect {}: {e} (VmConfig::control_serial?)",
                    path.display()
                ))
            })?;
            let reader =
                std::io::BufReader::new(stream.try_clone().map_err(|e| fail(e.to_string()))?);
            self.control = Some((stream, reader));
        }
        let (stream, reader) = self.control.as_mut().expect("connected above");
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.write_all(format!("{line}\n").as_bytes()))
            .map_err(|e| fail(format!("send {line:?}: {e}")))?;
        let mut answer = String::new();
        loop {
            let mut l = String::new();
            match reader.read_line(&mut l) {
                Ok(0) => {
                    return Err(fail(format!(
                        "{line:?}: the guest closed ttyS1; so far: {answer}"
                    )))
                }
                Ok(_) if l.trim_end() == "end" => return Ok(answer),
                Ok(_) => answer.push_str(&l),
                Err(e) => return Err(fail(format!("{line:?}: {e}; so far: {answer}"))),
            }
        }
    }

    /// A connection to the guest's ttyS0 (VmConfig::serial_console): what the
    /// guest writes there, and keys typed to it.
    pub fn serial_console(&self) -> std::io::Result<std::os::unix::net::UnixStream> {
        std::os::unix::net::UnixStream::connect(self._dir.path().join("console.sock"))
    }

    /// Pulls the plug: QEMU is killed at once, as a host crash or a power
    /// cut would stop the VM, with nothing flushed by the guest.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for QEMU to exit by itself (the guest powered off).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(VmError::Timeout {
                    name: self.name.clone(),
                    what: "QEMU exiting (guest power-off)".into(),
                    timeout,
                    log: self.log.display().to_string(),
                    tail: self.tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

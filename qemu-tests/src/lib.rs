//! A harness that boots the built appliance under QEMU and looks at it the way
//! a hypervisor user would: the serial console, QMP (power button, keys),
//! the disks after power-off.
//!
//! Every [`Vm`] kills its QEMU when dropped, so a failing test (a panic)
//! leaves no process behind. Serial logs are kept under
//! `target/qemu-tests/<name>.serial.log` for reading after a failure.
//! TCG by default (nested KVM hangs on the build machines); `ACCEL=kvm` opts in.

pub mod artifacts;
pub mod chrony;
pub mod host;
pub mod qmp;
pub mod screen;
pub mod vm;

pub use artifacts::Artifacts;
pub use host::HostServer;
pub use vm::{Bus, Vm, VmConfig};

/// A loopback port free now (for a host forward or a peer the test runs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

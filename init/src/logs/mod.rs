//! The appliance's logs on the state partition, in `/var/log/gateway`: one
//! file per unit (its stdout and stderr), `init.log` (PID 1's own
//! messages) and `kernel.log` (the rest of the kernel log), each rotated by
//! size ([`file`]); a total cap that removes the oldest rotated files first
//! and nothing else ([`cap`]); the kernel log follower ([`kmsg`]); and tail
//! and search for the control API ([`read`]).

pub mod cap;
pub mod file;
pub mod kmsg;
pub mod read;

pub const LOG_ROOT: &str = "/var/log/gateway";

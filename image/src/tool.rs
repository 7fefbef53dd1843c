//! Running the Debian tools the build relies on (mkfs.ext4, mkfs.vfat,
//! mtools, syslinux, sfdisk, dpkg-deb, debugfs). A failure names the command
//! line and carries the tool's own stderr, which is what tells an
//! administrator what went wrong.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

use thiserror::Error;

/// A tool could not be run, or it failed.
#[derive(Debug, Error)]
pub enum ToolError {
    #[error("cannot run `{command}` (is its Debian package installed?): {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// `program args...` as one line for messages.
pub fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `cmd`, feeding it `stdin`, and returns its stdout when it exits 0.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Vec<u8>, ToolError> {
    run_capture(cmd, stdin).map(|(stdout, _)| stdout)
}

/// Like [`run`], returning stdout and stderr, for tools such as debugfs that
/// exit 0 and report failed commands only on stderr.
pub fn run_capture(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
) -> Result<(Vec<u8>, Vec<u8>), ToolError> {
    let command = describe(cmd);
    let spawn_err = |source| ToolError::Spawn {
        command: command.clone(),
        source,
    };
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A tool that exits early closes the pipe; its exit status then says
        // why, so a write error here is not the error to report.
        let _ = pipe.write_all(input);
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        return Err(ToolError::Failed {
            command,
            status: out.status,
            stderr,
        });
    }
    Ok((out.stdout, out.stderr))
}

/// A command with the environment that makes e2fsprogs and mtools output
/// reproducible and non-interactive.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    // Fixed filesystem timestamps (2025-01-01T00:00:00Z), so two builds of
    // the same tree differ only where their inputs do.
    cmd.env("E2FSPROGS_FAKE_TIME", "1735689600");
    // mtools refuses some valid images (e.g. hidden sectors that do not match
    // the image it is given) unless told not to check.
    cmd.env("MTOOLS_SKIP_CHECK", "1");
    cmd.env("LC_ALL", "C");
    cmd
}

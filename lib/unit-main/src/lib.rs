//! What every unit's `main` does the same way: log to stderr as PID 1
//! collects it, take `--config FILE`, start a tokio runtime, and turn an
//! error into a line on stderr and an exit status.
//!
//! This crate owns only that plumbing; a unit's settings are
//! `gateway-unit-settings`'s and its work is its own crate's.

use std::path::PathBuf;
use std::process::ExitCode;

/// Logs to stderr as PID 1 collects them from a unit: no colours, no
/// target, no timestamp (PID 1 stamps every line it collects; a second
/// one would cost per connection for nothing).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .init();
}

/// The `FILE` of `PROGRAM --config FILE`, the only command line a unit
/// takes from PID 1; anything else is a usage error (exit status 2).
pub fn config_arg(program: &str) -> Result<PathBuf, ExitCode> {
    config_arg_from(program, std::env::args_os().skip(1))
}

fn config_arg_from(
    program: &str,
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Result<PathBuf, ExitCode> {
    let args: Vec<_> = args.collect();
    match args.as_slice() {
        [flag, path] if flag == "--config" => Ok(PathBuf::from(path)),
        _ => {
            eprintln!("usage: {program} --config FILE");
            Err(ExitCode::from(2))
        }
    }
}

/// A multi-threaded runtime with `workers` threads (None: one per CPU).
pub fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("start the runtime: {e}"))
}

/// Runs `work`; an error is printed as `program: error` and exits 1.
pub fn exit(program: &str, work: impl FnOnce() -> Result<(), String>) -> ExitCode {
    match work() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_config_and_a_file_is_a_command_line() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_arg_from("u", args(&["--config", "/run/u.json"]).into_iter()),
            Ok(PathBuf::from("/run/u.json"))
        );
        for bad in [
            &[][..],
            &["--config"][..],
            &["-c", "f"][..],
            &["--config", "f", "x"][..],
        ] {
            assert_eq!(
                config_arg_from("u", args(bad).into_iter()),
                Err(ExitCode::from(2)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_error_is_a_failure_and_a_runtime_starts() {
        assert_eq!(exit("u", || Ok(())), ExitCode::SUCCESS);
        assert_eq!(exit("u", || Err("no".into())), ExitCode::FAILURE);
        assert_eq!(runtime(Some(1)).unwrap().block_on(async { 7 }), 7);
    }
}

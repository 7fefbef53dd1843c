//! `gateway-cache`: `run` serves with a settings file (init writes it from
//! the configuration store); `ca install|export|fingerprint` manage the
//! appliance CA for the control API. Errors name the option or the file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};

use crate::ca;

#[derive(Debug, Parser)]
#[command(
    name = "gateway-cache",
    version,
    about = "The gateway appliance's caching proxy"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve, with the settings of FILE (re-read on SIGHUP).
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// The appliance CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Check a customer chain and key (PEM) and make them the CA of DIR;
    /// nothing is written when a check fails. The running service takes the
    /// new CA on SIGHUP.
    Install {
        #[arg(long, value_name = "PEM")]
        chain: PathBuf,
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the CA chain (PEM) agents must trust; generates the CA when DIR
    /// has none yet.
    Export {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the SHA-256 fingerprint of the CA certificate.
    Fingerprint {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

fn read(path: &PathBuf, what: &str) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("gateway-cache: --{what} {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn ca_command(command: CaCommand) -> Result<(), ExitCode> {
    let now = SystemTime::now();
    let fail = |e: ca::CaError| {
        eprintln!("gateway-cache: CA: {e}");
        ExitCode::FAILURE
    };
    match command {
        CaCommand::Install { chain, key, dir } => {
            let chain = read(&chain, "chain")?;
            let key = read(&key, "key")?;
            let ca = ca::install(&dir, &chain, &key, now).map_err(fail)?;
            println!(
                "installed {} (SHA-256 {})",
                ca.subject(),
                ca.fingerprint_hex()
            );
        }
        CaCommand::Export { dir } => {
            print!(
                "{}",
                ca::load_or_generate(&dir, now).map_err(fail)?.chain_pem()
            );
        }
        CaCommand::Fingerprint { dir } => {
            println!(
                "{}",
                ca::load_or_generate(&dir, now)
                    .map_err(fail)?
                    .fingerprint_hex()
            );
        }
    }
    Ok(())
}

pub fn main() -> ExitCode {
    gateway_unit_main::init_logging();
    let args = Args::parse();
    let result = match args.command {
        Command::Ca { command } => ca_command(command),
        Command::Run { config } => crate::run::run(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

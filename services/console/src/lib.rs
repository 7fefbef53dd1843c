//! The console text UI: how an administrator configures, inspects and
//! operates the appliance at the VM console (a Linux VT, 80x25, 16 colours)
//! or on the serial port. It follows the menus of QGS: Registration,
//! System, Info, Diagnostics, Commands.
//!
//! It owns the screens and nothing else: it reads and changes the appliance
//! only through the control API (it writes no file, runs no command), and
//! checks values with the configuration crate's own rules before sending
//! them. The navigation model ([`model`]) is sans-IO, drawing ([`view`]) is
//! a pure function of it, and [`app`] does the terminal and socket I/O.

pub mod app;
pub mod form;
pub mod key;
pub mod logs;
pub mod menu;
pub mod model;
pub mod tty;
pub mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "gateway-console", about = "The appliance's console text UI")]
pub struct Args {
    /// The control API socket.
    #[arg(long, env = "GATEWAY_CONTROL", default_value = gateway_control::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Columns to assume when the terminal reports no size (a serial port).
    #[arg(long, default_value_t = 80)]
    pub cols: u16,
    /// Rows to assume when the terminal reports no size.
    #[arg(long, default_value_t = 25)]
    pub rows: u16,
    /// Seconds between full redraws (kernel messages scribble on the VT)
    /// and status refreshes.
    #[arg(long, default_value_t = 5)]
    pub redraw: u64,
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    match app::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway-console: {e}");
            ExitCode::FAILURE
        }
    }
}

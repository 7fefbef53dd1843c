//! `gatewayctl`: the control API from a shell. Every subcommand is one
//! request; the output is for people, or the raw JSON result with `--json`.
//!
//! Exit status: 0 done, 1 refused by the appliance (the reason is printed),
//! 2 bad usage, 3 the control socket could not be reached or answered
//! nonsense.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError};
use crate::protocol::{
    CaInfo, CaptureStatus, DiagnosticsStatus, DiskStatus, KeyDoc, LogLines, PingResult,
    PlatformStatus, ProxyTestResult, ReportCreated, ReportOffer, Request, SetResult, Stats, Status,
    DEFAULT_SOCKET, MAX_CAPTURE_SECONDS,
};

#[derive(Debug, Parser)]
#[command(
    name = "gatewayctl",
    version,
    about = "Configure and operate the gateway appliance through its control API"
)]
struct Cli {
    /// The control socket.
    #[arg(long, env = "GATEWAY_CONTROL", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Network, DNS, time and units.
    Status,
    /// Configuration values (all, or the keys given).
    Get {
        keys: Vec<String>,
    },
    /// Change configuration: KEY=VALUE ...; an empty value restores the
    /// default. All or nothing.
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
    },
    /// The configuration keys with their type, default and rule.
    Keys,
    /// ICMP echo to a host name or IPv4 address.
    Ping {
        target: String,
        #[arg(short = 'c', long, default_value_t = 4)]
        count: u32,
    },
    /// The newest lines of a log (a unit's, init or kernel), newest first.
    Logs {
        name: String,
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
        /// Only lines containing this text (case insensitive).
        #[arg(long)]
        search: Option<String>,
    },
    /// Restart a unit (also one marked failed).
    Restart {
        unit: String,
    },
    /// CPU, memory, disk usage, network counters and per-unit usage.
    Stats,
    /// Print the appliance CA (PEM) that agents import for the cache port;
    /// its SHA-256 fingerprint goes to stderr.
    CaExport,
    /// Install a customer-signed CA chain and its key (PEM files).
    CaInstall {
        #[arg(long)]
        chain: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Format the patch disk (ext4) and mount it.
    FormatPatchDisk {
        /// Confirm that what the disk holds (a filesystem, a partition
        /// table) is destroyed.
        #[arg(long)]
        erase: bool,
    },
    /// Register with the platform (platform.pod) using a personalization
    /// code.
    Register {
        code: String,
    },
    /// Registration, last check-in and connectivity per platform URL.
    Platform {
        /// Run the connectivity check now.
        #[arg(long)]
        check: bool,
    },
    /// Reach the first platform URL through the upstream proxy, step by step.
    ProxyTest,
    /// Build a diagnostics report (logs, configuration with secrets
    /// redacted, status, stats, the last capture) encrypted to the support
    /// key, and offer it over SFTP with a one-time password.
    DiagnosticsReport,
    /// The report waiting for download and the upstream capture.
    Diagnostics,
    /// Capture the traffic between eth0 and its next hop (pcap) for the
    /// next diagnostics report.
    CaptureStart {
        /// How long, 1 to 300 seconds.
        #[arg(long, default_value_t = MAX_CAPTURE_SECONDS)]
        seconds: u32,
    },
    /// End a running capture now.
    CaptureStop,
    Reboot,
    Poweroff,
    /// Return to factory state (the configuration is erased) and reboot.
    ResetAppliance {
        /// Confirm: the configuration is lost.
        #[arg(long)]
        yes: bool,
    },
    /// Network and DNS settings back to their defaults (DHCP).
    ResetNetwork {
        #[arg(long)]
        yes: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("gatewayctl: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Client(e @ ClientError::Refused(_))) => {
            eprintln!("gatewayctl: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Client(e)) => {
            eprintln!("gatewayctl: {e}");
            ExitCode::from(3)
        }
    }
}

enum Failure {
    Usage(String),
    Client(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let request = request(&cli.command)?;
    // A ping waits about a second per packet; everything else is quick,
    // but a network change may take a few seconds to apply.
    let timeout = match &cli.command {
        Command::Ping { count, .. } => Duration::from_secs(u64::from(*count) * 2 + 10),
        // A connectivity check tries five hosts, each with its own timeouts.
        Command::Register { .. } | Command::Platform { check: true } | Command::ProxyTest => {
            Duration::from_secs(120)
        }
        // Tens of MiB of logs and a capture to compress and encrypt.
        Command::DiagnosticsReport => Duration::from_secs(300),
        _ => Duration::from_secs(30),
    };
    let mut client = Client::connect(&cli.socket, timeout)?;
    let result = client.call(&request)?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
        return Ok(());
    }
    let decode = |e: serde_json::Error| {
        Failure::Client(ClientError::Protocol {
            path: cli.socket.clone(),
            detail: e.to_string(),
        })
    };
    let text = match &cli.command {
        Command::Status => status_text(&serde_json::from_value(result).map_err(decode)?),
        Command::Get { .. } => {
            let values: BTreeMap<String, String> =
                serde_json::from_value(result).map_err(decode)?;
            // Keep the order the appliance lists keys in when all are asked.
            let order: Vec<String> = match &request {
                Request::Get { keys } if !keys.is_empty() => keys.clone(),
                _ => values.keys().cloned().collect(),
            };
            order
                .iter()
                .filter_map(|k| values.get(k).map(|v| format!("{k}={v}\n")))
                .collect()
        }
        Command::Set { .. } => {
            let r: SetResult = serde_json::from_value(result).map_err(decode)?;
            if r.changed.is_empty() {
                "nothing changed\n".to_owned()
            } else {
                let mut s = format!("changed: {}\n", r.changed.join(", "));
                for a in r.applied {
                    s += &format!("applied: {a}\n");
                }
                s
            }
        }
        Command::Keys => {
            let docs: Vec<KeyDoc> = serde_json::from_value(result).map_err(decode)?;
            docs.iter()
                .map(|k| {
                    format!(
                        "{}  ({}; default {:?})\n    {}\n",
                        k.name, k.kind, k.default, k.rule
                    )
                })
                .collect()
        }
        Command::Logs { .. } => {
            let l: LogLines = serde_json::from_value(result).map_err(decode)?;
            l.lines.iter().map(|line| format!("{line}\n")).collect()
        }
        Command::Ping { .. } => ping_text(&serde_json::from_value(result).map_err(decode)?),
        Command::Stats => stats_text(&serde_json::from_value(result).map_err(decode)?),
        Command::CaExport | Command::CaInstall { .. } => {
            let ca: CaInfo = serde_json::from_value(result).map_err(decode)?;
            eprintln!("SHA-256 fingerprint: {}", ca.fingerprint_sha256);
            ca.pem
        }
        Command::FormatPatchDisk { .. } => {
            disk_text(&serde_json::from_value(result).map_err(decode)?)
        }
        Command::Register { .. } | Command::Platform { .. } => {
            platform_text(&serde_json::from_value(result).map_err(decode)?)
        }
        Command::DiagnosticsReport => report_text(&serde_json::from_value(result).map_err(decode)?),
        Command::Diagnostics => {
            let d: DiagnosticsStatus = serde_json::from_value(result).map_err(decode)?;
            let mut text = match &d.report {
                Some(offer) => offer_text(offer),
                None => "report: none waiting\n".to_owned(),
            };
            text += &capture_text(&d.capture);
            text
        }
        Command::CaptureStart { .. } | Command::CaptureStop => {
            capture_text(&serde_json::from_value(result).map_err(decode)?)
        }
        _ => "done\n".to_owned(),
    };
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

fn request(command: &Command) -> Result<Request, Failure> {
    Ok(match command {
        Command::Status => Request::Status,
        Command::Get { keys } => Request::Get { keys: keys.clone() },
        Command::Set { assignments } => {
            let mut values = BTreeMap::new();
            for a in assignments {
                let (k, v) = a.split_once('=').ok_or_else(|| {
                    Failure::Usage(format!(
                        "{a:?} is not KEY=VALUE (an empty VALUE restores the default)"
                    ))
                })?;
                values.insert(k.trim().to_owned(), v.to_owned());
            }
            Request::Set { values }
        }
        Command::Keys => Request::Keys,
        Command::Ping { target, count } => Request::Ping {
            target: target.clone(),
            count: Some(*count),
        },
        Command::Logs {
            name,
            lines,
            search,
        } => Request::Logs {
            name: name.clone(),
            lines: Some(*lines),
            search: search.clone(),
        },
        Command::Restart { unit } => Request::RestartUnit { name: unit.clone() },
        Command::Stats => Request::Stats,
        Command::CaExport => Request::CaExport,
        Command::CaInstall { chain, key } => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p)
                    .map_err(|e| Failure::Usage(format!("read {}: {e}", p.display())))
            };
            Request::CaInstall {
                chain: read(chain)?,
                key: read(key)?,
            }
        }
        Command::FormatPatchDisk { erase } => Request::FormatPatchDisk { erase: *erase },
        Command::Register { code } => Request::Register { code: code.clone() },
        Command::Platform { check } => Request::Platform { check: *check },
        Command::ProxyTest => Request::ProxyTest,
        Command::DiagnosticsReport => Request::DiagnosticsReport,
        Command::Diagnostics => Request::Diagnostics,
        Command::CaptureStart { seconds } => Request::CaptureStart {
            seconds: Some(*seconds),
        },
        Command::CaptureStop => Request::CaptureStop,
        Command::Reboot => Request::Reboot,
        Command::Poweroff => Request::Poweroff,
        Command::ResetAppliance { yes } => {
            confirm(*yes, "reset-appliance erases the configuration")?;
            Request::ResetAppliance
        }
        Command::ResetNetwork { yes } => {
            confirm(
                *yes,
                "reset-network returns the network and DNS settings to DHCP defaults",
            )?;
            Request::ResetNetwork
        }
    })
}

fn confirm(yes: bool, what: &str) -> Result<(), Failure> {
    if yes {
        Ok(())
    } else {
        Err(Failure::Usage(format!("{what}: add --yes to confirm")))
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

pub fn status_text(s: &Status) -> String {
    let n = &s.network;
    let mut out = format!(
        "gateway {} ({}), up {} s, configuration {}\n",
        s.version, s.hostname, s.uptime_s, s.storage
    );
    out += &format!(
        "network   {} {}: {} (carrier {}, mac {})\n          address {}, gateway {}\n",
        n.interface,
        n.mode,
        n.state,
        if n.carrier { "up" } else { "down" },
        opt(&n.mac),
        opt(&n.address),
        opt(&n.gateway)
    );
    if let Some(l) = &n.lease {
        let expires = l
            .expires_in_s
            .map(|s| format!("{s} s"))
            .unwrap_or_else(|| "-".into());
        out += &format!(
            "          lease from {}, {} s old, expires in {expires}\n",
            l.server, l.age_s
        );
    }
    out += &format!(
        "dns       {} ({}){}\n",
        if s.dns.servers.is_empty() {
            "-".to_owned()
        } else {
            s.dns.servers.join(", ")
        },
        s.dns.source,
        s.dns
            .search
            .as_ref()
            .map(|d| format!(", search {d}"))
            .unwrap_or_default()
    );
    let t = &s.time;
    out += &format!(
        "time      {} UTC, {}: {}, server {}, offset {}, last sync {}\n          servers {}\n",
        utc(t.now_unix),
        if t.synchronized {
            "synchronised"
        } else {
            "not synchronised"
        },
        t.state,
        opt(&t.server),
        t.offset_ms
            .map(|o| format!("{o:.3} ms"))
            .unwrap_or_else(|| "-".into()),
        t.last_sync_age_s
            .map(|a| format!("{a} s ago"))
            .unwrap_or_else(|| "never".into()),
        t.servers.join(", ")
    );
    for u in &s.units {
        out += &format!("unit      {} {}: {}\n", u.name, u.state, u.detail);
    }
    for d in &s.disks {
        out += &disk_text(d);
    }
    for w in &s.warnings {
        out += &format!("warning   {w}\n");
    }
    for n in &s.notes {
        out += &format!("note      {n}\n");
    }
    out
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

pub fn platform_text(p: &PlatformStatus) -> String {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    let mut out = format!("pod       {}\n", or_none(&p.pod));
    out += &if p.registered {
        format!(
            "appliance {} ({})\n",
            or_none(&p.appliance_name),
            or_none(&p.appliance_id)
        )
    } else {
        "appliance not registered\n".to_owned()
    };
    if let Some(result) = &p.last_checkin_result {
        out += &format!("check-in  {result}\n");
    }
    for c in &p.connectivity {
        out += &format!(
            "{:<9} {} {}\n",
            if c.ok { "ok" } else { "FAILED" },
            c.url,
            c.result
        );
    }
    out
}

fn disk_text(d: &DiskStatus) -> String {
    format!(
        "disk      {} {} {} MiB: {}\n",
        d.role,
        d.device,
        mib(d.size_bytes),
        d.state
    )
}

pub fn stats_text(s: &Stats) -> String {
    let mut out = format!(
        "cpu       {} cores, {:.1}% busy, load {:.2} {:.2} {:.2}\n",
        s.cpu.cores, s.cpu.busy_percent, s.cpu.load[0], s.cpu.load[1], s.cpu.load[2]
    );
    out += &format!(
        "memory    {} MiB total, {} MiB available\n",
        mib(s.memory.total_bytes),
        mib(s.memory.available_bytes)
    );
    for d in &s.disks {
        out += &format!(
            "{:<9} {} of {} MiB used ({})\n",
            d.label,
            mib(d.used_bytes),
            mib(d.total_bytes),
            d.mount
        );
    }
    for n in &s.network {
        out += &format!(
            "network   {}: rx {} bytes {} packets {} errors, tx {} bytes {} packets {} errors\n",
            n.name, n.rx_bytes, n.rx_packets, n.rx_errors, n.tx_bytes, n.tx_packets, n.tx_errors
        );
    }
    for u in &s.units {
        out += &format!(
            "unit      {} {}: cpu {:.1}% ({:.1} s), memory {} MiB of {}\n",
            u.name,
            u.state,
            u.cpu_percent,
            u.cpu_total_s,
            mib(u.memory_bytes),
            u.memory_limit_bytes
                .map(|m| format!("{} MiB", mib(m)))
                .unwrap_or_else(|| "no limit".into())
        );
    }
    out += &match &s.cache {
        Some(c) => format!(
            "cache     hit ratio {:.1}%, {} active agents (last 60 min)
             cache     served {} bytes from the cache, {} bytes from origins ({:.1}% saved)
             cache     memory {} objects {} bytes, disk {} objects {} bytes
",
            c.hit_ratio * 100.0,
            c.active_agents,
            c.bytes_from_cache,
            c.bytes_from_origin,
            c.saved_percent(),
            c.memory_objects,
            c.memory_bytes,
            c.disk_objects,
            c.disk_bytes
        ),
        // Null: the cache unit is not active, or its /stats did not answer
        // in time (or PID 1 predates the cache section).
        None => "cache     no statistics (the cache is not running or did not answer)
"
        .into(),
    };
    out
}

/// A ping result as `ping` prints it (also the console's Ping screen).
pub fn ping_text(p: &PingResult) -> String {
    let mut out = format!("PING {} ({})\n", p.target, p.address);
    for r in &p.replies {
        out += &format!(
            "reply from {}: seq={} time={:.1} ms\n",
            p.address, r.seq, r.time_ms
        );
    }
    out += &format!(
        "{} packets sent, {} received, {:.0}% loss\n",
        p.sent, p.received, p.loss_percent
    );
    out
}

/// The proxy test, a line per step.
pub fn proxy_test_text(r: &ProxyTestResult) -> String {
    let mut text = format!(
        "proxy test through {} to {}: {}\n",
        r.proxy,
        r.target,
        if r.ok { "OK" } else { "FAILED" }
    );
    for s in &r.steps {
        text += &format!(
            "  {} {}: {}\n",
            if s.ok { "OK  " } else { "FAIL" },
            s.what,
            s.result
        );
    }
    text
}

/// Where and until when a report waits.
pub fn offer_text(o: &ReportOffer) -> String {
    let mut text = format!(
        "report: {} ({} bytes)\n\
         download: sftp -P {} {}@<appliance address>  (then: get {})\n\
         expires: {} UTC, or after one complete download\n",
        o.file,
        o.size_bytes,
        o.port,
        o.user,
        o.file,
        utc(o.expires_unix)
    );
    if let Some(fp) = &o.host_key_fingerprint {
        text += &format!("host key: {fp}\n");
    }
    text
}

/// A new report: where it waits and its one-time password.
pub fn report_text(r: &ReportCreated) -> String {
    format!(
        "{}password: {}  (one-time: shown once, not stored)\nencrypted to: {}\ncontents: {}\n",
        offer_text(&r.offer),
        r.password,
        r.recipient,
        r.contents.join(", ")
    )
}

pub fn capture_text(c: &CaptureStatus) -> String {
    let mut text = format!("capture: {}", c.state);
    if c.state != "idle" {
        text += &format!(
            ", {} packets, {} bytes, {} of {} s",
            c.packets, c.bytes, c.elapsed_s, c.seconds
        );
    }
    if !c.detail.is_empty() {
        text += &format!(" ({})", c.detail);
    }
    text += "\n";
    if let Some(f) = &c.file {
        text += &format!("capture file: {f}\n");
    }
    text
}

/// `YYYY-MM-DD HH:MM:SS` for Unix seconds (the civil-from-days algorithm of
/// H. Hinnant, valid for every date after 1970).
pub fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_print_the_cache_section_or_say_it_is_missing() {
        let mut s = Stats {
            cache: Some(crate::protocol::CacheStats {
                hit_ratio: 0.813,
                bytes_from_cache: 3 << 20,
                bytes_from_origin: 1 << 20,
                memory_objects: 12,
                memory_bytes: 4096,
                disk_objects: 5,
                disk_bytes: 1 << 30,
                active_agents: 3,
                ..Default::default()
            }),
            ..Stats::default()
        };
        let text = stats_text(&s);
        assert!(
            text.contains("cache     hit ratio 81.3%, 3 active agents (last 60 min)\n"),
            "{text}"
        );
        assert!(
            text.contains("cache     served 3145728 bytes from the cache, 1048576 bytes from origins (75.0% saved)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "cache     memory 12 objects 4096 bytes, disk 5 objects 1073741824 bytes\n"
            ),
            "{text}"
        );
        s.cache = None;
        let text = stats_text(&s);
        assert!(
            text.ends_with(
                "cache     no statistics (the cache is not running or did not answer)\n"
            ),
            "{text}"
        );
        assert!(!text.contains("hit ratio"), "{text}");
    }

    #[test]
    fn utc_formats_known_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_219_200 + 3_723), "2026-11-21 01:02:03");
    }
}

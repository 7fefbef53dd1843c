//! Usage figures for the Stats screen and the management agent: the
//! appliance's CPU and memory, each unit's from its cgroup (v2), disk usage
//! per disk, network counters. A task samples every [`INTERVAL`] so that
//! percentages cover a known, recent interval.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_control::protocol::{
    CpuStats, DiskUsage, InterfaceCounters, MemoryStats, Stats, UnitStats,
};

use crate::appliance::Appliance;
use crate::units::sandbox::CGROUP_ROOT;
use crate::units::table::UNITS;

pub const INTERVAL: Duration = Duration::from_secs(5);

/// (busy, total) jiffies of all CPUs, from /proc/stat's first line.
pub fn cpu_jiffies(proc_stat: &str) -> Option<(u64, u64)> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user and nice).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// A field of /proc/meminfo in bytes.
pub fn meminfo(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn loadavg(text: &str) -> [f64; 3] {
    let mut it = text.split_whitespace().map(|n| n.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// `usage_usec` of a cgroup's cpu.stat.
pub fn cpu_usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|n| n.trim().parse().ok())
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    read(path).trim().parse().ok()
}

fn disk_usage(label: &str, mount: &str) -> Option<DiskUsage> {
    let st = nix::sys::statvfs::statvfs(mount).ok()?;
    let block = st.fragment_size() as u64;
    let total = st.blocks() as u64 * block;
    Some(DiskUsage {
        label: label.into(),
        mount: mount.into(),
        total_bytes: total,
        used_bytes: total.saturating_sub(st.blocks_free() as u64 * block),
    })
}

fn interfaces(root: &Path) -> Vec<InterfaceCounters> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<InterfaceCounters> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .map(|name| {
            let s = root.join(&name).join("statistics");
            let n = |f: &str| read_u64(s.join(f)).unwrap_or(0);
            InterfaceCounters {
                rx_bytes: n("rx_bytes"),
                tx_bytes: n("tx_bytes"),
                rx_packets: n("rx_packets"),
                tx_packets: n("tx_packets"),
                rx_errors: n("rx_errors"),
                tx_errors: n("tx_errors"),
                name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What the last sample needs to turn the next into rates.
#[derive(Default)]
pub struct Sampler {
    cpu: Option<(u64, u64)>,
    units: HashMap<&'static str, (u64, Instant)>,
}

/// Share of `delta` over `total`, as a percentage.
fn percent(delta: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (delta as f64 * 100.0 / total as f64 * 10.0).round() / 10.0
    }
}

impl Sampler {
    pub fn sample(&mut self, unit_states: &HashMap<String, String>) -> Stats {
        let now = Instant::now();
        let cpu_now = cpu_jiffies(&read("/proc/stat"));
        let busy_percent = match (self.cpu, cpu_now) {
            (Some((b0, t0)), Some((b1, t1))) => {
                percent(b1.saturating_sub(b0), t1.saturating_sub(t0))
            }
            _ => 0.0,
        };
        self.cpu = cpu_now;
        let mem = read("/proc/meminfo");
        let units = UNITS
            .iter()
            .map(|spec| {
                let dir = Path::new(CGROUP_ROOT).join(spec.name);
                let usage = cpu_usage_usec(&read(dir.join("cpu.stat")));
                let cpu_percent = match (usage, self.units.get(spec.name)) {
                    (Some(u1), Some(&(u0, t0))) => {
                        let wall = now.duration_since(t0).as_micros() as u64;
                        percent(u1.saturating_sub(u0), wall)
                    }
                    _ => 0.0,
                };
                if let Some(u) = usage {
                    self.units.insert(spec.name, (u, now));
                }
                UnitStats {
                    name: spec.name.into(),
                    state: unit_states.get(spec.name).cloned().unwrap_or_default(),
                    cpu_percent,
                    cpu_total_s: usage.unwrap_or(0) as f64 / 1e6,
                    memory_bytes: read_u64(dir.join("memory.current")).unwrap_or(0),
                    // "max" (no limit) does not parse: None.
                    memory_limit_bytes: read_u64(dir.join("memory.max")),
                }
            })
            .collect();
        let mut disks: Vec<DiskUsage> = disk_usage("Disk 1", crate::statefs::MOUNT_POINT)
            .into_iter()
            .collect();
        if crate::mounts::is_mount_point(Path::new(crate::disks::patch::MOUNT_POINT)) {
            disks.extend(disk_usage("Disk 2", crate::disks::patch::MOUNT_POINT));
        }
        Stats {
            uptime_s: crate::uptime::uptime().as_secs(),
            cpu: CpuStats {
                cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
                busy_percent,
                load: loadavg(&read("/proc/loadavg")),
            },
            memory: MemoryStats {
                total_bytes: meminfo(&mem, "MemTotal").unwrap_or(0),
                available_bytes: meminfo(&mem, "MemAvailable").unwrap_or(0),
            },
            disks,
            network: interfaces(Path::new("/sys/class/net")),
            units,
        }
    }
}

/// Samples every [`INTERVAL`] for the life of PID 1's runtime.
pub async fn follow(a: Arc<Appliance>) {
    let mut sampler = Sampler::default();
    loop {
        let states: HashMap<String, String> = a
            .units
            .borrow()
            .iter()
            .map(|u| (u.name.clone(), u.state.clone()))
            .collect();
        let stats = sampler.sample(&states);
        a.stats.send_replace(stats);
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(cpu_jiffies(stat), Some((161, 981)));
        let mem = "MemTotal:         226000 kB\nMemFree:  1000 kB\nMemAvailable:     180000 kB\n";
        assert_eq!(meminfo(mem, "MemTotal"), Some(226_000 * 1024));
        assert_eq!(meminfo(mem, "MemAvailable"), Some(180_000 * 1024));
        assert_eq!(meminfo(mem, "Mem"), None);
        assert_eq!(loadavg("0.50 0.25 0.10 1/80 300\n"), [0.5, 0.25, 0.1]);
        assert_eq!(
            cpu_usage_usec("usage_usec 123456\nuser_usec 100\n"),
            Some(123456)
        );
        assert_eq!(percent(50, 200), 25.0);
        assert_eq!(percent(1, 0), 0.0);
    }

    #[test]
    fn a_sample_reads_this_machine_without_failing() {
        let mut s = Sampler::default();
        let first = s.sample(&HashMap::new());
        assert!(first.memory.total_bytes > 0);
        assert!(first.cpu.cores >= 1);
        assert_eq!(first.units.len(), UNITS.len());
    }
}

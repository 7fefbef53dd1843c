//! Usage figures for the Stats screen and the management agent: the
//! appliance's CPU and memory, each unit's from its cgroup (v2), disk usage
//! per disk, network counters, and the cache's counters from its
//! `GET /stats`. A task samples every [`INTERVAL`] so that percentages cover
//! a known, recent interval; the control API answers the last sample, so a
//! slow cache never delays a `stats` answer.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_control::protocol::{
    CacheStats, CpuStats, DiskUsage, InterfaceCounters, MemoryStats, Stats, UnitStats,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use crate::state::Appliance;
use crate::units::sandbox::CGROUP_ROOT;
use crate::units::table::UNITS;

pub const INTERVAL: Duration = Duration::from_secs(5);

/// The unit whose `GET /stats` is read (units::table's name).
const CACHE_UNIT: &str = "cache";

/// How long a sample waits for the cache's `/stats`. The cache answers from
/// counters in memory, in well under a millisecond: one that takes longer is
/// overloaded or stuck, and the sample goes on without its section rather
/// than fall behind.
pub const CACHE_STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// The most of a `/stats` answer read (it is well under 1 KiB): a confused
/// listener on the port cannot make PID 1 buffer without end.
const CACHE_STATS_MAX: u64 = 64 * 1024;

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
        let mut disks: Vec<DiskUsage> = disk_usage("Disk 1", crate::boot::statefs::MOUNT_POINT)
            .into_iter()
            .collect();
        if crate::boot::mounts::is_mount_point(Path::new(crate::disks::patch::MOUNT_POINT)) {
            disks.extend(disk_usage("Disk 2", crate::disks::patch::MOUNT_POINT));
        }
        Stats {
            uptime_s: crate::pid1::uptime::uptime().as_secs(),
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
            cache: None,
        }
    }
}

/// The cache's counters from its `GET /stats` on 127.0.0.1:`port` (the
/// cache answers it to loopback only); None when it does not answer 200
/// with its JSON within `timeout`.
pub async fn cache_stats(port: u16, timeout: Duration) -> Option<CacheStats> {
    tokio::time::timeout(timeout, fetch_cache_stats(port))
        .await
        .ok()
        .flatten()
}

async fn fetch_cache_stats(port: u16) -> Option<CacheStats> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    // The cache closes the connection after the answer (Connection: close).
    (&mut stream)
        .take(CACHE_STATS_MAX)
        .read_to_end(&mut answer)
        .await
        .ok()?;
    parse_cache_answer(&answer)
}

/// The JSON body of a 200 answer (the cache's `gateway_unit_stats`
/// type), as the control API's cache section.
fn parse_cache_answer(answer: &[u8]) -> Option<CacheStats> {
    let text = std::str::from_utf8(answer).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split_whitespace().nth(1)?;
    if status != "200" {
        return None;
    }
    // The control API's section keeps the counters it names; the rest of
    // the cache's answer (its fills, its proxy's counters) is left out.
    serde_json::from_str(body.trim()).ok()
}

/// Takes one sample and publishes it: the system's figures and, while the
/// cache unit is active, its counters (absent otherwise, and when it does
/// not answer within [`CACHE_STATS_TIMEOUT`]). `cache_answered` is whether
/// the last try got an answer, so that only a change is logged, not every
/// sample of a cache that stays silent.
pub async fn refresh(a: &Appliance, sampler: &mut Sampler, cache_answered: &mut Option<bool>) {
    let states: HashMap<String, String> = a
        .units
        .borrow()
        .iter()
        .map(|u| (u.name.clone(), u.state.clone()))
        .collect();
    let mut stats = sampler.sample(&states);
    if states.get(CACHE_UNIT).map(String::as_str) == Some("active") {
        let port = a.config().cache.port;
        stats.cache = cache_stats(port, CACHE_STATS_TIMEOUT).await;
        let answered = stats.cache.is_some();
        match (*cache_answered, answered) {
            (Some(true), true) | (Some(false), false) => {}
            (_, true) => info!("stats: reading the cache's counters (127.0.0.1:{port}/stats)"),
            // A cache just started may not listen yet: only one that
            // answered before and stopped is worth a warning.
            (None, false) => info!("stats: the cache's 127.0.0.1:{port}/stats does not answer yet"),
            (Some(true), false) => warn!("stats: the cache's 127.0.0.1:{port}/stats gave no counters (no 200 answer with its JSON within {CACHE_STATS_TIMEOUT:?}): the stats go without a cache section until it does"),
        }
        *cache_answered = Some(answered);
    } else {
        // A cache that starts again is logged again once it answers.
        *cache_answered = None;
    }
    a.stats.send_replace(stats);
}

/// Samples every [`INTERVAL`] for the life of PID 1's runtime.
pub async fn follow(a: Arc<Appliance>) {
    let mut sampler = Sampler::default();
    let mut cache_answered = None;
    loop {
        refresh(&a, &mut sampler, &mut cache_answered).await;
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

    use gateway_config::{Config, Store};
    use gateway_control::protocol::UnitStatus;
    use gateway_control::server::Handler;
    use gateway_control::Request;
    use std::sync::Mutex;

    /// A fake cache port on loopback: each connection's request head is
    /// kept, then `answer` is written (None: the connection is held open
    /// without a word, as a stuck cache would).
    async fn fake_cache(answer: Option<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut s, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                match &answer {
                    Some(a) => {
                        let _ = s.write_all(a.as_bytes()).await;
                        let _ = s.shutdown().await;
                    }
                    None => held.push(s),
                }
            }
        });
        (port, heads)
    }

    /// An answer as the cache's `respond` writes it.
    fn http(status: &str, body: &str) -> String {
        let body = format!("{body}\n");
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// An appliance whose cache.port is a fake cache answering `answer`,
    /// its cache unit active. The port is the system's pick, taken again
    /// when the configuration rules refuse it (a few are the appliance's).
    async fn with_fake_cache(
        dir: &Path,
        answer: Option<String>,
    ) -> (Arc<Appliance>, u16, Arc<Mutex<Vec<String>>>) {
        loop {
            let (port, heads) = fake_cache(answer.clone()).await;
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let a = Appliance::new(Store::new(dir), None, Config::default(), tx);
            if a.set(&[("cache.port".into(), port.to_string())])
                .await
                .is_ok()
            {
                set_cache_state(&a, "active");
                return (a, port, heads);
            }
        }
    }

    fn set_cache_state(a: &Appliance, state: &str) {
        a.units.send_replace(vec![UnitStatus {
            name: CACHE_UNIT.into(),
            state: state.into(),
            detail: String::new(),
        }]);
    }

    async fn stats_answer(a: &Appliance) -> Stats {
        let r = a.handle(Request::Stats).await;
        assert!(r.ok, "{r:?}");
        serde_json::from_value(r.result.unwrap()).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_stats_answer_carries_the_cache_section_read_from_its_port() {
        // What the cache answers, as it writes it: its `/stats` type
        // (the cache's own test fills it from its counters), with whatever
        // else it counts (fills, its proxy's counters) left out of the
        // section.
        let answer = gateway_unit_stats::CacheStats {
            hits: 2,
            revalidated: 1,
            misses: 1,
            hit_ratio: 0.75,
            bytes_from_cache: 3 << 20,
            bytes_from_origin: 1 << 20,
            memory_objects: 12,
            memory_bytes: 40_960,
            disk_objects: 3,
            disk_bytes: 5 << 20,
            transient_fills: 4,
            transient_window_bytes: 64 << 20,
            readers_detached: 1,
            active_agents: 2,
            proxy: gateway_unit_stats::ProxyStats {
                connections: 9,
                refusals: [("port".to_owned(), 1)].into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let json = answer.to_json();
        let dir = tempfile::tempdir().unwrap();
        let (a, _, heads) = with_fake_cache(dir.path(), Some(http("200 OK", &json))).await;
        let mut sampler = Sampler::default();
        let mut answered = None;
        refresh(&a, &mut sampler, &mut answered).await;
        let stats = stats_answer(&a).await;
        assert_eq!(
            stats.cache,
            Some(CacheStats {
                hits: 2,
                revalidated: 1,
                misses: 1,
                hit_ratio: 0.75,
                bytes_from_cache: 3 << 20,
                bytes_from_origin: 1 << 20,
                memory_objects: 12,
                memory_bytes: 40_960,
                disk_objects: 3,
                disk_bytes: 5 << 20,
                active_agents: 2,
                ..CacheStats::default()
            })
        );
        assert!(
            stats.memory.total_bytes > 0,
            "the rest of the sample is there"
        );
        assert_eq!(answered, Some(true));
        let seen = heads.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].starts_with("GET /stats HTTP/1.1\r\n"), "{seen:?}");

        // A cache unit that is not active is not asked: no section, no
        // connection.
        set_cache_state(&a, "activating");
        refresh(&a, &mut sampler, &mut answered).await;
        assert_eq!(stats_answer(&a).await.cache, None);
        assert_eq!(heads.lock().unwrap().len(), 1, "not asked while inactive");
        assert_eq!(answered, None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cache_that_is_silent_refuses_or_is_not_there_leaves_the_section_out() {
        let dir = tempfile::tempdir().unwrap();
        // Stuck: the sample waits no longer than the timeout, then goes on
        // without the section.
        let (a, port, heads) = with_fake_cache(dir.path(), None).await;
        let started = Instant::now();
        assert_eq!(cache_stats(port, Duration::from_millis(300)).await, None);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(heads.lock().unwrap().len(), 1, "it was asked");
        // The same through a whole sample, with the real timeout.
        let started = Instant::now();
        let mut answered = None;
        refresh(&a, &mut Sampler::default(), &mut answered).await;
        assert!(
            started.elapsed() < CACHE_STATS_TIMEOUT + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let stats = stats_answer(&a).await;
        assert_eq!(stats.cache, None);
        assert!(stats.memory.total_bytes > 0, "the rest is published");
        assert_eq!(answered, Some(false));

        // Not 200 (a refusal), or 200 without the JSON: absent.
        let (port, _) = fake_cache(Some(http("403 Forbidden", "gateway cache: no"))).await;
        assert_eq!(cache_stats(port, CACHE_STATS_TIMEOUT).await, None);
        let (port, _) = fake_cache(Some(http("200 OK", "not json"))).await;
        assert_eq!(cache_stats(port, CACHE_STATS_TIMEOUT).await, None);
        // Nothing listening: refused at once.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(cache_stats(port, CACHE_STATS_TIMEOUT).await, None);
        // And one that answers is read, the same way.
        let (port, _) = fake_cache(Some(http("200 OK", r#"{"hits":1,"hit_ratio":1.0}"#))).await;
        let c = cache_stats(port, CACHE_STATS_TIMEOUT).await.unwrap();
        assert_eq!((c.hits, c.hit_ratio), (1, 1.0));
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

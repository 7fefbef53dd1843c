//! The client's protocol core, with no I/O and no clock reading (the
//! smoltcp/ntpd-rs shape): it says which servers to poll and when
//! (`due`, `next_wakeup`), takes the outcome of each exchange (`handle`),
//! and answers with what to do to the clock. The caller carries out the
//! exchanges and the clock action, then reports back (`applied`).
//!
//! The first clock update waits until every server has finished its initial
//! burst (or failed), so a false-ticker that happens to answer first cannot
//! set the clock before the others have had their say.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::config::NtpConfig;
use crate::discipline::{ClockAction, Discipline};
use crate::select::{root_distance, select, Candidate};
use crate::source::{Outcome, Source, Verdict};
use crate::status::{NtpStatus, ServerState, ServerStatus};

/// One exchange the caller should carry out now.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRequest {
    pub source: usize,
    pub name: String,
    /// `None`: resolve `name` first.
    pub addr: Option<IpAddr>,
    /// Hand back with the outcome; outcomes of exchanges that were in flight
    /// while the clock was corrected are discarded (their T1 and T4 were
    /// read from different clocks).
    pub epoch: u64,
}

#[derive(Debug)]
pub struct Engine {
    sources: Vec<Source>,
    discipline: Discipline,
    min_poll: Duration,
    max_poll: Duration,
    floor: SystemTime,
    epoch: u64,
    peer: Option<usize>,
    last_offset: Option<f64>,
    last_sync: Option<SystemTime>,
    /// When the sample behind the last clock update was taken.
    last_update_sample: Option<Instant>,
    steps: u32,
}

impl Engine {
    /// `config` should have passed `NtpConfig::validate`.
    pub fn new(config: &NtpConfig, floor: SystemTime, now: Instant) -> Self {
        Engine {
            sources: config
                .effective_servers()
                .into_iter()
                .map(|name| Source::new(name, now))
                .collect(),
            discipline: Discipline::new(config.min_poll, config.max_poll),
            min_poll: config.min_poll,
            max_poll: config.max_poll,
            floor,
            epoch: 0,
            peer: None,
            last_offset: None,
            last_sync: None,
            last_update_sample: None,
            steps: 0,
        }
    }

    /// Exchanges to start now; each source is marked in flight until its
    /// outcome is handed back.
    pub fn due(&mut self, now: Instant) -> Vec<PollRequest> {
        let epoch = self.epoch;
        self.sources
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| !s.in_flight && s.next_poll <= now)
            .map(|(i, s)| {
                s.in_flight = true;
                PollRequest {
                    source: i,
                    name: s.name.clone(),
                    addr: s.addr,
                    epoch,
                }
            })
            .collect()
    }

    /// When `due` will next have something; `None` while everything is in
    /// flight.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.sources
            .iter()
            .filter(|s| !s.in_flight)
            .map(|s| s.next_poll)
            .min()
    }

    /// Takes the outcome of the exchange started for `source` at `epoch`.
    /// Returns what to do to the clock, if anything; after doing it the
    /// caller calls `applied`.
    pub fn handle(
        &mut self,
        source: usize,
        epoch: u64,
        outcome: Outcome,
        now: Instant,
    ) -> Option<ClockAction> {
        let poll = self.discipline.poll();
        let (min, max, floor) = (self.min_poll, self.max_poll, self.floor);
        let src = self.sources.get_mut(source)?;
        src.in_flight = false;
        if epoch != self.epoch {
            // Measured across a clock correction: worthless, ask again soon.
            src.next_poll = now;
            return None;
        }
        let was_reply = matches!(outcome, Outcome::Reply { .. });
        src.record(outcome, now, floor);
        src.schedule(now, min, max, poll);
        let from_peer_with_sample = was_reply && src.new_sample && self.peer == Some(source);

        let first = !self.discipline.has_synced();
        if first && !self.sources.iter().all(Source::settled) {
            return None;
        }
        let selection = self.select(now);
        let Some((peer, offset, sample_at)) = selection else {
            if self.peer.take().is_some() || first {
                tracing::debug!("no majority of servers agrees; clock left alone");
            }
            self.discipline.trouble();
            return None;
        };
        let peer_changed = self.peer != Some(peer);
        self.peer = Some(peer);
        self.last_offset = Some(offset);
        // After the first sync the clock follows the system peer: update
        // when it brings a new sample (or when the peer changes).
        if !first && !from_peer_with_sample && !peer_changed {
            return None;
        }
        // The filter may still prefer a sample the clock was already
        // corrected by (RFC 5905 §10: only newer samples update the clock).
        if !peer_changed && self.last_update_sample.is_some_and(|t| sample_at <= t) {
            return None;
        }
        self.last_update_sample = Some(sample_at);
        for s in &mut self.sources {
            s.new_sample = false;
        }
        let action = self.discipline.update(offset)?;
        tracing::debug!(?action, server = %self.sources[peer].name, "clock update");
        Some(action)
    }

    /// Runs the selection over the sources that can take part, records the
    /// verdicts, and returns the system peer, the combined offset and when
    /// the peer's chosen sample was taken.
    fn select(&mut self, now: Instant) -> Option<(usize, f64, Instant)> {
        let candidates: Vec<Candidate> = self
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.denied && s.reach != 0)
            .filter_map(|(i, s)| {
                let f = s.filter.best(now)?;
                Some(Candidate {
                    id: i,
                    offset: f.offset,
                    distance: root_distance(
                        f.delay,
                        f.dispersion,
                        f.jitter,
                        s.root_delay,
                        s.root_dispersion,
                    ),
                    stratum: s.stratum?,
                })
            })
            .collect();
        for s in &mut self.sources {
            s.verdict = None;
        }
        let sel = select(&candidates);
        let Some(sel) = sel else {
            for c in &candidates {
                self.sources[c.id].verdict = Some(Verdict::Candidate);
            }
            return None;
        };
        for &i in &sel.survivors {
            self.sources[i].verdict = Some(Verdict::Candidate);
        }
        for &i in &sel.falsetickers {
            if self.sources[i].verdict != Some(Verdict::Falseticker) {
                tracing::debug!(server = %self.sources[i].name, "false-ticker");
            }
            self.sources[i].verdict = Some(Verdict::Falseticker);
        }
        let peer = &mut self.sources[sel.system_peer];
        peer.verdict = Some(Verdict::Selected);
        let at = peer.filter.best(now)?.at;
        Some((sel.system_peer, sel.offset, at))
    }

    /// The caller corrected the clock as `handle` asked; `wall` is the
    /// corrected clock's time. Stored samples are moved by the correction
    /// and exchanges in flight are invalidated.
    pub fn applied(&mut self, action: ClockAction, wall: SystemTime) {
        let correction = match action {
            ClockAction::Step(x) => {
                self.steps += 1;
                x
            }
            ClockAction::Slew(x) => x,
        };
        for s in &mut self.sources {
            s.filter.shift(correction);
        }
        self.last_offset = self.last_offset.map(|o| o - correction);
        self.epoch += 1;
        self.last_sync = Some(wall);
    }

    pub fn status(&self) -> NtpStatus {
        let peer = self.peer.map(|i| &self.sources[i]);
        NtpStatus {
            synchronized: self.discipline.has_synced()
                && self.last_sync.is_some()
                && peer.is_some(),
            offset_ms: self.last_offset.map(|o| o * 1e3),
            server: peer.map(|s| s.name.clone()),
            server_address: peer.and_then(|s| s.addr),
            last_sync: self.last_sync,
            stratum: peer.and_then(|s| s.stratum).map(|s| s.saturating_add(1)),
            poll_secs: self.discipline.poll().as_secs(),
            steps: self.steps,
            servers: self.sources.iter().map(server_status).collect(),
        }
    }
}

fn server_status(s: &Source) -> ServerStatus {
    let best = s
        .filter
        .best(s.filter.last().map(|l| l.at).unwrap_or_else(Instant::now));
    let state = if s.denied {
        ServerState::Refused
    } else if s.reach == 0 {
        if s.polled {
            ServerState::Unreachable
        } else {
            ServerState::Pending
        }
    } else {
        match s.verdict {
            Some(Verdict::Selected) => ServerState::Selected,
            Some(Verdict::Candidate) => ServerState::Candidate,
            Some(Verdict::Falseticker) => ServerState::Falseticker,
            None => ServerState::Pending,
        }
    };
    ServerStatus {
        name: s.name.clone(),
        address: s.addr,
        reachable: s.reach != 0,
        reach: s.reach,
        stratum: s.stratum,
        offset_ms: best.map(|b| b.offset * 1e3),
        delay_ms: best.map(|b| b.delay * 1e3),
        jitter_ms: best.map(|b| b.jitter * 1e3),
        state,
        last_error: s.last_error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ServerReply;
    use crate::timestamp::NtpTimestamp;
    use std::time::UNIX_EPOCH;

    /// A virtual network: servers at fixed offsets from true time, replying
    /// instantly, and a local clock `local_error` off true time.
    struct World {
        engine: Engine,
        true_time: SystemTime,
        local_error: f64,
        server_offsets: Vec<f64>,
        now: Instant,
    }

    impl World {
        fn new(server_offsets: Vec<f64>, local_error: f64) -> Self {
            let config = NtpConfig {
                servers: (0..server_offsets.len())
                    .map(|i| format!("10.0.0.{}", i + 1))
                    .collect(),
                min_poll: Duration::from_secs(16),
                max_poll: Duration::from_secs(256),
                port: 123,
            };
            let floor = UNIX_EPOCH + Duration::from_secs(1_735_689_600);
            let now = Instant::now();
            World {
                engine: Engine::new(&config, floor, now),
                true_time: floor + Duration::from_secs(86_400 * 300),
                local_error,
                server_offsets,
                now,
            }
        }

        fn at(&self, offset: f64) -> NtpTimestamp {
            NtpTimestamp::from_system_time(crate::timestamp::offset_time(self.true_time, offset))
        }

        /// Advances virtual time to the next poll and answers it.
        fn step(&mut self) {
            let next = self.engine.next_wakeup().unwrap();
            let dt = next.saturating_duration_since(self.now);
            self.now = next;
            self.true_time += dt;
            for req in self.engine.due(self.now) {
                let so = self.server_offsets[req.source];
                let reply = ServerReply {
                    leap: 0,
                    stratum: 2,
                    root_delay: 0.001,
                    root_dispersion: 0.001,
                    precision: 1e-6,
                    reference_id: [0; 4],
                    receive: self.at(so + 0.0005),
                    transmit: self.at(so + 0.0005),
                };
                let outcome = Outcome::Reply {
                    addr: req.addr.unwrap(),
                    reply,
                    t1: self.at(self.local_error),
                    t4: self.at(self.local_error + 0.001),
                    pending_slew: 0.0,
                };
                if let Some(action) = self.engine.handle(req.source, req.epoch, outcome, self.now) {
                    let x = match action {
                        ClockAction::Step(x) | ClockAction::Slew(x) => x,
                    };
                    self.local_error += x;
                    self.engine.applied(action, self.true_time);
                }
            }
        }
    }

    #[test]
    fn one_hour_wrong_is_stepped_after_the_burst() {
        let mut w = World::new(vec![0.0], -3600.0);
        for _ in 0..3 {
            w.step();
            assert!(!w.engine.status().synchronized, "waits for the burst");
        }
        w.step();
        let st = w.engine.status();
        assert!(st.synchronized);
        assert!(w.local_error.abs() < 1e-6, "{}", w.local_error);
        assert_eq!(st.steps, 1);
        assert_eq!(st.server.as_deref(), Some("10.0.0.1"));
        assert_eq!(st.stratum, Some(3));
        assert!(
            st.offset_ms.unwrap().abs() < 1e-3,
            "what is left after the step"
        );
    }

    #[test]
    fn false_ticker_is_ignored_and_reported() {
        let mut w = World::new(vec![0.0, 30.0, 0.0], 5.0);
        for _ in 0..20 {
            w.step();
        }
        let st = w.engine.status();
        assert!(st.synchronized);
        assert!(w.local_error.abs() < 1e-6, "{}", w.local_error);
        assert_eq!(st.servers[1].state, ServerState::Falseticker);
        assert!(matches!(
            st.servers[0].state,
            ServerState::Selected | ServerState::Candidate
        ));
        assert_ne!(st.server.as_deref(), Some("10.0.0.2"));
    }

    #[test]
    fn poll_interval_grows_while_stable() {
        let mut w = World::new(vec![0.0], 0.002);
        for _ in 0..40 {
            w.step();
        }
        assert_eq!(w.engine.status().poll_secs, 256);
    }

    #[test]
    fn no_majority_means_no_sync() {
        let mut w = World::new(vec![0.0, 30.0], -1.0);
        for _ in 0..10 {
            w.step();
        }
        assert!(!w.engine.status().synchronized);
        assert_eq!(w.local_error, -1.0, "clock untouched");
    }

    #[test]
    fn stale_epoch_outcomes_are_discarded() {
        let mut w = World::new(vec![0.0], 0.0);
        let reqs = w.engine.due(w.now);
        w.engine.applied(ClockAction::Slew(0.001), w.true_time);
        let r = w.engine.handle(
            reqs[0].source,
            reqs[0].epoch,
            Outcome::NoReply {
                addr: None,
                error: "x".into(),
            },
            w.now,
        );
        assert_eq!(r, None);
        assert_eq!(w.engine.status().servers[0].reach, 0);
        assert!(!w.engine.status().servers[0]
            .state
            .eq(&ServerState::Unreachable));
    }

    #[test]
    fn status_serialises_to_json() {
        let w = World::new(vec![0.0], 0.0);
        let json = serde_json::to_string(&w.engine.status()).unwrap();
        assert!(json.contains("\"synchronized\":false"), "{json}");
        assert!(json.contains("\"state\":\"pending\""), "{json}");
    }
}

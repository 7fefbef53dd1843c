//! One configured server as the client sees it: its address, its clock
//! filter, its reach register, and when to poll it next. No I/O: the engine
//! feeds it the outcome of each exchange and reads its schedule back.
//!
//! At start, and whenever it becomes reachable again, a source is polled in
//! a burst of `BURST` quick exchanges (like chrony's and ntpd's `iburst`) so
//! the first sync has a filtered sample from every server within seconds,
//! not minutes. Unanswered polls back off exponentially to the maximum poll.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::filter::ClockFilter;
use crate::packet::{ReplyError, ServerReply};
use crate::sample::{offset_delay, Sample, LOCAL_PRECISION};
use crate::timestamp::{offset_time, NtpTimestamp};

/// Exchanges in the initial burst.
pub const BURST: u8 = 4;
/// Spacing of burst exchanges (capped by the minimum poll).
pub const BURST_INTERVAL: Duration = Duration::from_secs(2);
/// Unanswered polls after which a resolved name is looked up again, so a
/// pool name moves on from a dead server.
pub const RERESOLVE_AFTER: u32 = 4;

/// The selection's last word on this source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Selected,
    Candidate,
    Falseticker,
}

/// What the I/O layer reports about one exchange.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A reply that passed `NtpPacket::check_reply`. `t1` and `t4` are our
    /// clock's send and receive times; `pending_slew` the clock's
    /// `Clock::pending_slew()` read at `t4`.
    Reply {
        addr: IpAddr,
        reply: ServerReply,
        t1: NtpTimestamp,
        t4: NtpTimestamp,
        pending_slew: f64,
    },
    /// An answer we cannot use (kiss-o'-death, unsynchronised server...).
    Rejected { addr: IpAddr, error: ReplyError },
    /// No answer in time, a socket error, or the name did not resolve (then
    /// `addr` is `None`).
    NoReply { addr: Option<IpAddr>, error: String },
}

#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub addr: Option<IpAddr>,
    /// The name is an address literal: nothing to re-resolve.
    literal: bool,
    pub filter: ClockFilter,
    /// Last eight polls, newest in bit 0, set when answered (RFC 5905 reach).
    pub reach: u8,
    /// Consecutive polls without a usable answer.
    pub fails: u32,
    pub polled: bool,
    pub stratum: Option<u8>,
    pub root_delay: f64,
    pub root_dispersion: f64,
    pub burst_left: u8,
    pub next_poll: Instant,
    pub in_flight: bool,
    /// Raised by RATE kisses: this server wants to be polled no faster.
    pub rate_floor: Duration,
    /// DENY/RSTR kiss: not used any more (polled rarely in case that ends).
    pub denied: bool,
    pub verdict: Option<Verdict>,
    pub last_error: Option<String>,
    /// A sample arrived since the last clock update.
    pub new_sample: bool,
}

impl Source {
    pub fn new(name: String, now: Instant) -> Self {
        let addr = name.parse::<IpAddr>().ok();
        Source {
            literal: addr.is_some(),
            addr,
            name,
            filter: ClockFilter::default(),
            reach: 0,
            fails: 0,
            polled: false,
            stratum: None,
            root_delay: 0.0,
            root_dispersion: 0.0,
            burst_left: BURST,
            next_poll: now,
            in_flight: false,
            rate_floor: Duration::ZERO,
            denied: false,
            verdict: None,
            last_error: None,
            new_sample: false,
        }
    }

    /// The initial burst is over: the first sync need not wait for it.
    pub fn settled(&self) -> bool {
        self.burst_left == 0
    }

    /// Folds one outcome into the source. `floor` is the clock floor: a
    /// server whose time is before it is wrong, whatever it claims.
    pub fn record(&mut self, outcome: Outcome, now: Instant, floor: SystemTime) {
        self.polled = true;
        let was_unreachable = self.reach == 0;
        self.reach <<= 1;
        match outcome {
            Outcome::Reply {
                addr,
                reply,
                t1,
                t4,
                pending_slew,
            } => {
                self.addr = Some(addr);
                match offset_delay(t1, reply.receive, reply.transmit, t4) {
                    Err(e) => self.fail(e.to_string()),
                    Ok((offset, _)) if server_time(t4, offset, floor) < floor => {
                        self.fail("server time is before the clock floor".into())
                    }
                    Ok((offset, delay)) => {
                        self.filter.add(Sample {
                            offset: offset - pending_slew,
                            delay,
                            dispersion: reply.precision + LOCAL_PRECISION,
                            at: now,
                        });
                        self.reach |= 1;
                        self.fails = 0;
                        self.stratum = Some(reply.stratum);
                        self.root_delay = reply.root_delay;
                        self.root_dispersion = reply.root_dispersion;
                        self.last_error = None;
                        self.new_sample = true;
                        self.denied = false;
                        if was_unreachable && self.settled() {
                            // Back after an outage: refill the filter quickly.
                            self.burst_left = BURST;
                        }
                    }
                }
            }
            Outcome::Rejected { addr, error } => {
                self.addr = Some(addr);
                if error.is_access_denied() {
                    self.denied = true;
                    self.burst_left = 0;
                    self.filter.clear();
                }
                if error.is_rate_kiss() {
                    self.rate_floor = (self.rate_floor * 2).max(BURST_INTERVAL * 4);
                }
                self.fail(error.to_string());
            }
            Outcome::NoReply { addr, error } => {
                if addr.is_none() {
                    // The name does not resolve: nothing to burst at.
                    self.burst_left = 0;
                }
                self.fail(error);
            }
        }
        if self.burst_left > 0 {
            self.burst_left -= 1;
        }
    }

    fn fail(&mut self, error: String) {
        self.fails += 1;
        self.last_error = Some(error);
        if self.fails >= RERESOLVE_AFTER && !self.literal {
            self.addr = None;
        }
    }

    /// Plans the next poll after an outcome, given the system poll interval.
    pub fn schedule(
        &mut self,
        now: Instant,
        min_poll: Duration,
        max_poll: Duration,
        poll: Duration,
    ) {
        let interval = if self.denied {
            max_poll
        } else if self.burst_left > 0 {
            BURST_INTERVAL.min(min_poll)
        } else if self.fails > 0 {
            (min_poll * 2u32.pow(self.fails.min(10))).min(max_poll)
        } else {
            poll
        };
        self.next_poll = now + interval.max(self.rate_floor.min(max_poll));
    }
}

/// The server's time at `t4` by our measurement: our clock plus the offset.
/// The timestamp is placed in the era nearest the floor, which is right for
/// 68 years after the build.
fn server_time(t4: NtpTimestamp, offset: f64, floor: SystemTime) -> SystemTime {
    offset_time(t4.to_system_time(floor), offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn floor() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_735_689_600)
    }

    fn ts(t: SystemTime) -> NtpTimestamp {
        NtpTimestamp::from_system_time(t)
    }

    fn reply_at(server: SystemTime) -> ServerReply {
        ServerReply {
            leap: 0,
            stratum: 3,
            root_delay: 0.0,
            root_dispersion: 0.0,
            precision: 1e-6,
            reference_id: [0; 4],
            receive: ts(server),
            transmit: ts(server + Duration::from_micros(10)),
        }
    }

    fn reply_outcome(local: SystemTime, server: SystemTime) -> Outcome {
        Outcome::Reply {
            addr: "10.0.0.1".parse().unwrap(),
            reply: reply_at(server),
            t1: ts(local),
            t4: ts(local + Duration::from_micros(100)),
            pending_slew: 0.0,
        }
    }

    #[test]
    fn burst_then_normal_poll() {
        let t = Instant::now();
        let local = floor() + Duration::from_secs(86_400);
        let mut s = Source::new("10.0.0.1".into(), t);
        assert_eq!(s.addr, Some("10.0.0.1".parse().unwrap()));
        let poll = Duration::from_secs(64);
        let mut intervals = Vec::new();
        for _ in 0..5 {
            s.record(reply_outcome(local, local), t, floor());
            s.schedule(t, poll, poll * 16, poll);
            intervals.push((s.next_poll - t).as_secs());
        }
        assert_eq!(intervals, vec![2, 2, 2, 64, 64]);
        assert!(s.settled());
        assert_eq!(s.reach, 0b11111);
        assert_eq!(s.filter.len(), 5);
    }

    #[test]
    fn timeouts_back_off_and_drop_the_resolved_address() {
        let t = Instant::now();
        let mut s = Source::new("pool.example".into(), t);
        s.burst_left = 0;
        s.addr = Some("10.0.0.9".parse().unwrap());
        let min = Duration::from_secs(64);
        let mut intervals = Vec::new();
        for _ in 0..6 {
            s.record(
                Outcome::NoReply {
                    addr: s.addr,
                    error: "timeout".into(),
                },
                t,
                floor(),
            );
            s.schedule(t, min, min * 16, min);
            intervals.push((s.next_poll - t).as_secs());
        }
        assert_eq!(intervals, vec![128, 256, 512, 1024, 1024, 1024]);
        assert_eq!(s.addr, None, "re-resolved after {RERESOLVE_AFTER} failures");
        assert_eq!(s.reach, 0);
    }

    #[test]
    fn unresolvable_name_settles_at_once() {
        let t = Instant::now();
        let mut s = Source::new("nowhere.example".into(), t);
        s.record(
            Outcome::NoReply {
                addr: None,
                error: "no such name".into(),
            },
            t,
            floor(),
        );
        assert!(s.settled());
    }

    #[test]
    fn deny_kiss_stops_using_the_server() {
        let t = Instant::now();
        let mut s = Source::new("10.0.0.1".into(), t);
        s.record(
            Outcome::Rejected {
                addr: "10.0.0.1".parse().unwrap(),
                error: ReplyError::Kiss {
                    code: "DENY".into(),
                },
            },
            t,
            floor(),
        );
        assert!(s.denied && s.settled());
        s.schedule(
            t,
            Duration::from_secs(64),
            Duration::from_secs(1024),
            Duration::from_secs(64),
        );
        assert_eq!(s.next_poll - t, Duration::from_secs(1024));
        assert_eq!(
            s.last_error.as_deref(),
            Some("server sent kiss-o'-death DENY")
        );
    }

    #[test]
    fn rate_kiss_slows_polling() {
        let t = Instant::now();
        let mut s = Source::new("10.0.0.1".into(), t);
        s.burst_left = 0;
        s.record(
            Outcome::Rejected {
                addr: "10.0.0.1".parse().unwrap(),
                error: ReplyError::Kiss {
                    code: "RATE".into(),
                },
            },
            t,
            floor(),
        );
        let p = Duration::from_secs(1);
        s.schedule(t, p, Duration::from_secs(64), p);
        assert!(s.next_poll - t >= Duration::from_secs(8));
    }

    #[test]
    fn a_server_claiming_1970_is_not_believed() {
        let t = Instant::now();
        let mut s = Source::new("10.0.0.1".into(), t);
        let local = floor() + Duration::from_secs(3600);
        s.record(
            reply_outcome(local, UNIX_EPOCH + Duration::from_secs(60)),
            t,
            floor(),
        );
        assert!(s.filter.is_empty());
        assert_eq!(s.reach, 0);
        assert!(s.last_error.unwrap().contains("floor"));
    }

    #[test]
    fn pending_slew_is_taken_out_of_the_sample() {
        let t = Instant::now();
        let mut s = Source::new("10.0.0.1".into(), t);
        let local = floor() + Duration::from_secs(3600);
        let Outcome::Reply {
            addr,
            reply,
            t1,
            t4,
            ..
        } = reply_outcome(local, local + Duration::from_millis(50))
        else {
            unreachable!()
        };
        s.record(
            Outcome::Reply {
                addr,
                reply,
                t1,
                t4,
                pending_slew: 0.030,
            },
            t,
            floor(),
        );
        let o = s.filter.best(t).unwrap().offset;
        assert!((o - 0.020).abs() < 1e-3, "{o}");
    }
}

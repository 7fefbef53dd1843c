//! The manager against a real DHCP server: dnsmasq in a network namespace,
//! the client's eth0 in another, joined by a veth pair. Needs root (network
//! namespaces) and /usr/sbin/dnsmasq (Debian package dnsmasq-base).

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{wait_for, Lab, DNS, SERVER_IP};
use gateway_net::{Mode, NetConfig, NetError, NetManager};

const LEASE_WAIT: Duration = Duration::from_secs(30);

fn dhcp() -> NetConfig {
    NetConfig { mode: Mode::Dhcp }
}

fn in_range(address: Ipv4Addr, first: u8, last: u8) -> bool {
    let o = address.octets();
    o[..3] == [10, 77, 0] && (first..=last).contains(&o[3])
}

#[test]
fn lease_is_obtained_and_applied_with_dns() {
    let mut lab = Lab::new("lease");
    lab.start_dnsmasq("10.77.0.100,10.77.0.150", &[]);
    let resolv = lab.dir.path().join("resolv.conf");
    let resolv_in = resolv.clone();
    let (status, elapsed) = lab.in_client(move || async move {
        let mut manager = NetManager::new("eth0").await.expect("manager");
        let mut status = manager.status();
        tokio::spawn(gateway_net::resolv::follow(
            manager.status(),
            vec![],
            None,
            resolv_in,
        ));
        let start = Instant::now();
        manager.apply(dhcp()).await.expect("dhcp mode");
        let s = wait_for(&mut status, LEASE_WAIT, "a lease", |s| {
            s.lease.is_some() && s.address.is_some()
        })
        .await;
        let elapsed = start.elapsed();
        // Give resolv::follow its turn.
        tokio::time::sleep(Duration::from_millis(200)).await;
        (s, elapsed)
    });
    let address = status.address.expect("address");
    assert!(in_range(address.address, 100, 150), "{address:?}");
    assert_eq!(address.prefix, 24);
    assert_eq!(status.gateway, Some(SERVER_IP));
    assert_eq!(status.dhcp_dns, DNS.to_vec());
    assert_eq!(status.dhcp_domain.as_deref(), Some("lab.example"));
    let lease = status.lease.expect("lease");
    assert_eq!(lease.server, SERVER_IP);
    assert_eq!(lease.duration_secs, 120);
    assert_eq!(status.state, "dhcp: bound");

    // The kernel has it: exactly this address and a default route.
    assert_eq!(
        lab.client_addresses(),
        vec![format!("{}/24", address.address)]
    );
    let routes = lab.client_routes();
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("default via 10.77.0.1 dev eth0 proto dhcp")),
        "{routes:?}"
    );
    // And resolv.conf follows.
    let text = std::fs::read_to_string(&resolv).expect("resolv.conf written");
    assert!(
        text.contains("nameserver 10.77.0.53\nnameserver 10.77.0.54\n"),
        "{text}"
    );
    assert!(text.contains("search lab.example\n"), "{text}");

    println!(
        "FIGURE dhcp: apply(Dhcp) with link down -> lease applied: {} ms (carrier up -> lease applied: {} ms)",
        elapsed.as_millis(),
        status.dhcp_bound_in_ms.unwrap_or(0)
    );
}

#[test]
fn lease_is_renewed_at_t1() {
    let mut lab = Lab::new("renew");
    // T1 = 2 s, T2 = 3 s, so renewals come quickly within the 2 min lease.
    lab.start_dnsmasq(
        "10.77.0.100,10.77.0.150",
        &["--dhcp-option=option:T1,2", "--dhcp-option=option:T2,3"],
    );
    let (first, renewed) = lab.in_client(|| async {
        let mut manager = NetManager::new("eth0").await.expect("manager");
        let mut status = manager.status();
        manager.apply(dhcp()).await.expect("dhcp mode");
        let first = wait_for(&mut status, LEASE_WAIT, "a lease", |s| s.lease.is_some()).await;
        let renewed = wait_for(&mut status, Duration::from_secs(15), "two renewals", |s| {
            s.lease.as_ref().is_some_and(|l| l.renewals >= 2)
        })
        .await;
        (first, renewed)
    });
    assert_eq!(first.address, renewed.address, "same address after renewal");
    let (a, b) = (first.lease.unwrap(), renewed.lease.unwrap());
    assert!(b.obtained_at_unix > a.obtained_at_unix, "{a:?} {b:?}");
    assert!(b.expires_at_unix > a.expires_at_unix, "{a:?} {b:?}");
    // dnsmasq saw the renewals as requests for the address it had given.
    let log = lab.dnsmasq_log();
    let acks = log.matches("DHCPACK(srv0)").count();
    assert!(acks >= 3, "one ACK for the lease, one per renewal:\n{log}");
    // The unicast ACKs reached the client's port-68 socket: the kernel
    // answered none of them with ICMP port unreachable.
    assert_eq!(common::icmp_out_dest_unreachs(&lab.client_ns), 0);
}

#[test]
fn nak_on_renewal_restarts_discovery_in_the_new_range() {
    let mut lab = Lab::new("nak");
    let fast = ["--dhcp-option=option:T1,2", "--dhcp-option=option:T2,3"];
    lab.start_dnsmasq("10.77.0.100,10.77.0.150", &fast);
    let client_ns = lab.client_ns.clone();
    // Shared with the client thread, which restarts dnsmasq mid-test.
    let lab_ref = std::sync::Arc::new(std::sync::Mutex::new(lab));
    let lab_in = lab_ref.clone();
    let (old, new) = common::in_netns(&client_ns, move || async move {
        let mut manager = NetManager::new("eth0").await.expect("manager");
        let mut status = manager.status();
        manager.apply(dhcp()).await.expect("dhcp mode");
        let old = wait_for(&mut status, LEASE_WAIT, "a lease", |s| s.address.is_some()).await;
        // The server comes back with another range and no memory of the
        // lease: the next renewal is refused.
        lab_in
            .lock()
            .unwrap()
            .start_dnsmasq("10.77.0.200,10.77.0.250", &fast);
        let new = wait_for(&mut status, LEASE_WAIT, "a lease in the new range", |s| {
            s.address.is_some_and(|a| in_range(a.address, 200, 250))
        })
        .await;
        (old, new)
    });
    let lab = lab_ref.lock().unwrap();
    assert!(in_range(old.address.unwrap().address, 100, 150));
    assert!(
        lab.dnsmasq_log().contains("DHCPNAK(srv0)"),
        "{}",
        lab.dnsmasq_log()
    );
    // Only the new address is left on the kernel.
    assert_eq!(
        lab.client_addresses(),
        vec![format!("{}/24", new.address.unwrap().address)]
    );
}

#[test]
fn switch_from_dhcp_to_static_releases_and_leaves_nothing_of_the_lease() {
    let mut lab = Lab::new("static");
    lab.start_dnsmasq("10.77.0.100,10.77.0.150", &[]);
    let (leased, after) = lab.in_client(|| async {
        let mut manager = NetManager::new("eth0").await.expect("manager");
        let mut status = manager.status();
        manager.apply(dhcp()).await.expect("dhcp mode");
        let leased = wait_for(&mut status, LEASE_WAIT, "a lease", |s| s.address.is_some()).await;
        let static_mode = NetConfig {
            mode: Mode::Static {
                address: Ipv4Addr::new(192, 168, 50, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 168, 50, 1)),
            },
        };
        manager.apply(static_mode).await.expect("static mode");
        let after = status.borrow().clone();
        (leased, after)
    });
    let leased = leased.address.unwrap().address;
    assert_eq!(lab.client_addresses(), vec!["192.168.50.2/24".to_string()]);
    let routes = lab.client_routes();
    assert!(
        routes.iter().all(|r| !r.contains("10.77.0.")),
        "a route of the lease lingers: {routes:?}"
    );
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("default via 192.168.50.1 dev eth0")),
        "{routes:?}"
    );
    assert_eq!(after.lease, None);
    assert!(after.dhcp_dns.is_empty());
    assert_eq!(after.gateway, Some(Ipv4Addr::new(192, 168, 50, 1)));
    assert_eq!(after.state, "static");
    // The server was told.
    let released = format!("DHCPRELEASE(srv0) {leased}");
    // dnsmasq writes its log asynchronously; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lab.dnsmasq_log().contains(&released) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        lab.dnsmasq_log().contains(&released),
        "{}",
        lab.dnsmasq_log()
    );
}

#[test]
fn switch_to_unconfigured_leaves_no_address_and_the_link_up() {
    let mut lab = Lab::new("unconf");
    lab.start_dnsmasq("10.77.0.100,10.77.0.150", &[]);
    let status = lab.in_client(|| async {
        let mut manager = NetManager::new("eth0").await.expect("manager");
        let mut status = manager.status();
        manager.apply(dhcp()).await.expect("dhcp mode");
        wait_for(&mut status, LEASE_WAIT, "a lease", |s| s.address.is_some()).await;
        manager
            .apply(NetConfig {
                mode: Mode::Unconfigured,
            })
            .await
            .expect("unconfigured mode");
        let s = status.borrow().clone();
        s
    });
    assert!(
        lab.client_addresses().is_empty(),
        "{:?}",
        lab.client_addresses()
    );
    assert!(lab.client_routes().is_empty(), "{:?}", lab.client_routes());
    let link = lab.client_link();
    assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
    assert_eq!(status.address, None);
    assert_eq!(status.state, "unconfigured");
}

#[test]
fn static_is_verified_then_dhcp_replaces_it() {
    let mut lab = Lab::new("s2d");
    lab.start_dnsmasq("10.77.0.100,10.77.0.150", &[]);
    lab.in_client(|| async {
        let mut manager = NetManager::new("eth0").await.expect("manager");
        let mut status = manager.status();
        // A gateway outside the subnet is refused before anything changes.
        let bad = NetConfig {
            mode: Mode::Static {
                address: Ipv4Addr::new(10, 77, 0, 9),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 78, 0, 1)),
            },
        };
        let err = manager.apply(bad).await.expect_err("invalid static");
        assert!(matches!(err, NetError::InvalidStatic(_)), "{err}");
        assert!(status
            .borrow()
            .last_error
            .as_deref()
            .unwrap()
            .contains("outside the subnet"));

        let good = NetConfig {
            mode: Mode::Static {
                address: Ipv4Addr::new(10, 77, 0, 9),
                prefix: 24,
                gateway: Some(SERVER_IP),
            },
        };
        manager.apply(good).await.expect("static mode");
        let s = status.borrow().clone();
        assert_eq!(
            s.address.map(|a| a.address),
            Some(Ipv4Addr::new(10, 77, 0, 9))
        );
        assert_eq!(s.gateway, Some(SERVER_IP));
        assert_eq!(s.last_error, None);

        manager.apply(dhcp()).await.expect("dhcp mode");
        let s = wait_for(&mut status, LEASE_WAIT, "a lease", |s| s.lease.is_some()).await;
        assert!(in_range(s.address.unwrap().address, 100, 150));
    });
    let addresses = lab.client_addresses();
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    assert!(
        !addresses[0].starts_with("10.77.0.9/"),
        "static address lingers"
    );
}

#[test]
fn carrier_loss_keeps_the_lease_and_carrier_return_confirms_it() {
    let mut lab = Lab::new("carrier");
    lab.start_dnsmasq("10.77.0.100,10.77.0.150", &[]);
    let server_ns = lab.server_ns.clone();
    let set_server_link = move |up: bool| {
        common::ip(&[
            "-n",
            &server_ns,
            "link",
            "set",
            "srv0",
            if up { "up" } else { "down" },
        ]);
    };
    let (held, back, measured) = lab.in_client(move || async move {
        let mut manager = NetManager::new("eth0").await.expect("manager");
        let mut status = manager.status();
        manager.apply(dhcp()).await.expect("dhcp mode");
        let bound = wait_for(&mut status, LEASE_WAIT, "a lease", |s| s.address.is_some()).await;
        set_server_link(false);
        let held = wait_for(&mut status, Duration::from_secs(10), "carrier loss", |s| {
            !s.carrier
        })
        .await;
        assert_eq!(held.address, bound.address, "address kept without carrier");
        assert_eq!(held.state, "dhcp: bound (no carrier)");
        let renewals = held.lease.as_ref().unwrap().renewals;
        let up_at = Instant::now();
        set_server_link(true);
        let back = wait_for(
            &mut status,
            Duration::from_secs(20),
            "the lease confirmed",
            |s| s.carrier && s.lease.as_ref().is_some_and(|l| l.renewals > renewals),
        )
        .await;
        (held, back, up_at.elapsed())
    });
    assert_eq!(held.address, back.address);
    println!(
        "FIGURE dhcp: peer link up -> same lease confirmed and applied: {} ms (manager's own measure from carrier event: {} ms)",
        measured.as_millis(),
        back.dhcp_bound_in_ms.unwrap_or(0)
    );
}

/// The figure: time from link up (the peer's end coming up, so the carrier
/// appears) to a new lease applied on the kernel. dnsmasq's ping check of a
/// new address (about 3 s, see `lease_is_obtained_and_applied_with_dns`) is
/// turned off here, so the figure is the client's and the exchange's.
#[test]
fn time_from_link_up_to_lease_applied() {
    let mut lab = Lab::new("timing");
    lab.start_dnsmasq("10.77.0.100,10.77.0.150", &["--no-ping"]);
    let server_ns = lab.server_ns.clone();
    let set_server_link = move |up: bool| {
        common::ip(&[
            "-n",
            &server_ns,
            "link",
            "set",
            "srv0",
            if up { "up" } else { "down" },
        ]);
    };
    let runs = lab.in_client(move || async move {
        let mut manager = NetManager::new("eth0").await.expect("manager");
        let mut status = manager.status();
        let mut runs = Vec::new();
        for _ in 0..5 {
            // A fresh exchange each time: the lease is released, the
            // carrier dropped, DHCP started without carrier.
            manager
                .apply(NetConfig {
                    mode: Mode::Unconfigured,
                })
                .await
                .expect("unconfigured");
            set_server_link(false);
            wait_for(&mut status, Duration::from_secs(10), "carrier loss", |s| {
                !s.carrier
            })
            .await;
            manager.apply(dhcp()).await.expect("dhcp mode");
            let up_at = Instant::now();
            set_server_link(true);
            let s = wait_for(&mut status, LEASE_WAIT, "a lease", |s| {
                s.lease.is_some() && s.address.is_some()
            })
            .await;
            runs.push((up_at.elapsed(), s.dhcp_bound_in_ms.unwrap_or(0)));
        }
        runs
    });
    let mut ms: Vec<u128> = runs.iter().map(|(d, _)| d.as_millis()).collect();
    ms.sort();
    println!(
        "FIGURE dhcp: link up -> new lease applied (dnsmasq --no-ping), 5 runs: min {} ms, median {} ms, max {} ms; manager's own measure from the carrier event: {:?} ms",
        ms[0],
        ms[2],
        ms[4],
        runs.iter().map(|(_, m)| *m).collect::<Vec<_>>()
    );
    assert!(ms[4] < 10_000, "{ms:?}");
}

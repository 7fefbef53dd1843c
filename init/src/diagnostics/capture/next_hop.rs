//! The next hop of an interface: the default gateway from /proc/net/route and
//! its MAC from the neighbour table in /proc/net/arp. The parsers take the
//! files' text, so the tests feed them fixtures; only [`next_hop`] reads /proc.

use std::net::Ipv4Addr;

/// RTF_UP | RTF_GATEWAY from <linux/route.h>: a usable route via a gateway.
const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;
/// ATF_COM from <linux/if_arp.h>: the neighbour entry holds a resolved MAC
/// (an entry being resolved shows 00:00:00:00:00:00 with flags 0x0).
const ATF_COM: u32 = 0x2;

/// The default gateway's IPv4 and MAC on `interface`, from /proc/net/route and
/// /proc/net/arp.
///
/// `None` when the interface has no default route, or when the gateway is not
/// (yet) in the neighbour table: the kernel resolves it only when traffic goes
/// out, so a caller that finds `None` on an idle link can ping the gateway and
/// ask again.
pub fn next_hop(interface: &str) -> Option<(Ipv4Addr, [u8; 6])> {
    let route = std::fs::read_to_string("/proc/net/route").ok()?;
    let gateway = default_gateway(&route, interface)?;
    let arp = std::fs::read_to_string("/proc/net/arp").ok()?;
    let mac = neighbour_mac(&arp, gateway, interface)?;
    Some((gateway, mac))
}

/// The gateway of the default route (destination and mask 0.0.0.0, up, via a
/// gateway) of `interface` in the text of /proc/net/route; with several, the
/// one of lowest metric, the one the kernel uses.
///
/// The kernel prints addresses as the hexadecimal of the address's four bytes
/// read as a native-endian u32 (`0102A8C0` is 192.168.2.1 on x86), hence
/// `to_ne_bytes`.
pub fn default_gateway(route: &str, interface: &str) -> Option<Ipv4Addr> {
    route
        .lines()
        .skip(1) // the column titles
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gw, flags, metric, mask) = (
                f.first()?,
                f.get(1)?,
                f.get(2)?,
                f.get(3)?,
                f.get(6)?,
                f.get(7)?,
            );
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = hex_addr(dest)?.is_unspecified() && hex_addr(mask)?.is_unspecified();
            let usable = flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
            (*iface == interface && default && usable)
                .then(|| Some((metric.parse::<u32>().ok()?, hex_addr(gw)?)))
                .flatten()
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, gw)| gw)
}

fn hex_addr(field: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(field, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

/// The resolved MAC of `ip` on `interface` in the text of /proc/net/arp.
pub fn neighbour_mac(arp: &str, ip: Ipv4Addr, interface: &str) -> Option<[u8; 6]> {
    arp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (addr, flags, mac, device) = (f.first()?, f.get(2)?, f.get(3)?, f.get(5)?);
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        let mac = parse_mac(mac)?;
        (addr.parse::<Ipv4Addr>().ok()? == ip
            && *device == interface
            && flags & ATF_COM != 0
            && mac != [0; 6])
            .then_some(mac)
    })
}

/// A MAC address written as six colon-separated hexadecimal bytes
/// (`52:54:00:12:34:56`, either case), as /proc prints it and as an
/// administrator types it.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A MAC address as `52:54:00:12:34:56`, for messages and the console.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE_TITLES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";

    /// An address as the kernel prints it, whatever the test machine's
    /// byte order.
    fn hex(ip: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip))
    }

    fn route_line(
        iface: &str,
        dest: [u8; 4],
        gw: [u8; 4],
        flags: u32,
        metric: u32,
        mask: [u8; 4],
    ) -> String {
        format!(
            "{iface}\t{}\t{}\t{flags:04X}\t0\t0\t{metric}\t{}\t0\t0\t0",
            hex(dest),
            hex(gw),
            hex(mask)
        )
    }

    fn routes(lines: &[String]) -> String {
        let mut s = String::from(ROUTE_TITLES);
        for l in lines {
            s.push('\n');
            s.push_str(l);
        }
        s.push('\n');
        s
    }

    #[test]
    fn finds_the_default_gateway_of_the_interface() {
        let table = routes(&[
            route_line("eth0", [192, 168, 2, 0], [0; 4], 0x1, 0, [255, 255, 255, 0]),
            route_line("eth0", [0; 4], [192, 168, 2, 1], 0x3, 100, [0; 4]),
        ]);
        assert_eq!(
            default_gateway(&table, "eth0"),
            Some(Ipv4Addr::new(192, 168, 2, 1))
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn reads_a_real_little_endian_table() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            default_gateway(table, "eth0"),
            Some(Ipv4Addr::new(192, 168, 2, 1))
        );
    }

    #[test]
    fn no_default_route_means_no_gateway() {
        let table = routes(&[route_line(
            "eth0",
            [10, 0, 0, 0],
            [0; 4],
            0x1,
            0,
            [255, 0, 0, 0],
        )]);
        assert_eq!(default_gateway(&table, "eth0"), None);
        assert_eq!(default_gateway(ROUTE_TITLES, "eth0"), None);
        assert_eq!(default_gateway("", "eth0"), None);
    }

    #[test]
    fn a_default_route_of_another_interface_or_down_is_ignored() {
        let table = routes(&[
            route_line("eth1", [0; 4], [10, 0, 0, 1], 0x3, 0, [0; 4]),
            route_line("eth0", [0; 4], [10, 0, 0, 2], 0x2, 0, [0; 4]),
        ]);
        assert_eq!(default_gateway(&table, "eth0"), None);
        assert_eq!(
            default_gateway(&table, "eth1"),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(default_gateway(&table, "eth"), None, "no prefix match");
    }

    #[test]
    fn the_lowest_metric_wins() {
        let table = routes(&[
            route_line("eth0", [0; 4], [10, 0, 0, 9], 0x3, 200, [0; 4]),
            route_line("eth0", [0; 4], [10, 0, 0, 1], 0x3, 100, [0; 4]),
            "garbage line".to_owned(),
        ]);
        assert_eq!(
            default_gateway(&table, "eth0"),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
    }

    const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
192.168.2.1      0x1         0x2         52:54:00:12:34:56     *        eth0
192.168.2.7      0x1         0x0         00:00:00:00:00:00     *        eth0
10.0.0.1         0x1         0x2         52:54:00:aa:bb:cc     *        eth1
";

    #[test]
    fn finds_the_gateway_mac() {
        assert_eq!(
            neighbour_mac(ARP, Ipv4Addr::new(192, 168, 2, 1), "eth0"),
            Some([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
    }

    #[test]
    fn incomplete_absent_or_other_interface_entries_give_nothing() {
        assert_eq!(
            neighbour_mac(ARP, Ipv4Addr::new(192, 168, 2, 7), "eth0"),
            None
        );
        assert_eq!(
            neighbour_mac(ARP, Ipv4Addr::new(192, 168, 2, 9), "eth0"),
            None
        );
        assert_eq!(neighbour_mac(ARP, Ipv4Addr::new(10, 0, 0, 1), "eth0"), None);
        assert_eq!(neighbour_mac("", Ipv4Addr::new(10, 0, 0, 1), "eth1"), None);
    }

    #[test]
    fn mac_text_round_trips_and_bad_text_is_refused() {
        let mac = parse_mac("52:54:00:AB:cd:0f").unwrap();
        assert_eq!(mac, [0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f]);
        assert_eq!(format_mac(&mac), "52:54:00:ab:cd:0f");
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:01",
            "52:54:00:ab:cd:xx",
            "525:4:00:ab:cd:0f",
            "52::00:ab:cd:0f",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }
}

//! Which hosts are internal: loopback, private, link-local (with the cloud
//! metadata addresses), CGNAT, reserved ranges, and names that only mean
//! something inside a network. A repository on one of them is refused, so
//! that berth cannot be made to fetch from the platform's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is internal, in words for the refusal; `None` if public.
pub fn internal_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => internal_v4(ip),
        IpAddr::V6(ip) => internal_v6(ip),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([169, 254, 169, 254], 32, "the cloud metadata address"),
        ([0, 0, 0, 0], 8, "a non-routable address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a shared (CGNAT) address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 0, 0, 0], 24, "a reserved address"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a reserved address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let bits = u128::from(ip);
    let v4_at = |shift: u32| Ipv4Addr::from(((bits >> shift) & 0xffff_ffff) as u32);
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("the cloud metadata address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if ip.is_unspecified() {
        return Some("a non-routable address");
    }
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    // NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::) reach the IPv4
    // address they carry.
    if bits >> 32 == 0xffff || bits >> 32 == 0 || bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return internal_v4(v4_at(0));
    }
    if segments[0] == 0x2002 {
        return internal_v4(v4_at(80));
    }
    match segments[0] {
        s if s & 0xfe00 == 0xfc00 => Some("a private (unique local) address"),
        s if s & 0xffc0 == 0xfe80 => Some("a link-local address"),
        s if s & 0xffc0 == 0xfec0 => Some("a site-local address"),
        s if s & 0xff00 == 0xff00 => Some("a multicast address"),
        0x2001 if segments[1] == 0x0db8 => Some("a documentation address"),
        0x0100 if segments[1..4] == [0, 0, 0] => Some("a reserved address"),
        _ => None,
    }
}

/// Names that mean a host inside some network rather than on the internet,
/// whatever they resolve to here: `localhost`, cluster and intranet suffixes,
/// and single-label names (`kubernetes`, `registry`).
pub fn internal_name(host: &str) -> Option<&'static str> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    const SUFFIXES: &[(&str, &str)] = &[
        ("localhost", "a loopback name"),
        // Before `local`: the first match names the reason.
        ("cluster.local", "a cluster-internal name"),
        ("local", "an internal name"),
        ("internal", "an internal name"),
        ("localdomain", "an internal name"),
        ("home.arpa", "an internal name"),
        ("lan", "an internal name"),
        ("intranet", "an internal name"),
        ("svc", "a cluster-internal name"),
    ];
    if let Some((_, why)) = SUFFIXES
        .iter()
        .find(|(suffix, _)| host == *suffix || host.ends_with(&format!(".{suffix}")))
    {
        return Some(why);
    }
    (!host.contains('.')).then_some("a name without a domain (an internal name)")
}

//! Trusted proxies (`BERTH_TRUSTED_PROXIES`): the networks whose
//! `X-Forwarded-For` is believed, and the client address that leaves.
//! `audit::SourceAddr` applies this to each request.

use axum::http::HeaderMap;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address and a prefix length (a bare address is /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}` has an invalid prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses a comma-separated list; empty items are skipped.
pub fn parse_list(items: &[String]) -> Result<Vec<Cidr>, String> {
    items
        .iter()
        .flat_map(|item| item.split(','))
        .filter(|item| !item.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address: `peer`, or when `peer` is trusted, the rightmost
/// `X-Forwarded-For` entry that is not (a trusted proxy can vouch only for
/// the hop before it).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = canonical(ip);
        if !is_trusted(client) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.1.2.3")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        let one: Cidr = "192.168.1.1".parse().unwrap();
        assert!(one.contains(ip("192.168.1.1")) && !one.contains(ip("192.168.1.2")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        let list = parse_list(&["10.0.0.1, ,fd00::/8".into()]).unwrap();
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxies = parse_list(&["10.0.0.0/8".into()]).unwrap();
        let headers = forwarded("6.6.6.6, 203.0.113.9, 10.0.0.2");
        // An untrusted peer: its own address, whatever it claims.
        assert_eq!(
            client_ip(Some(ip("198.51.100.1")), &headers, &proxies),
            Some(ip("198.51.100.1"))
        );
        // A trusted one: the nearest untrusted hop, not the spoofable first.
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &headers, &proxies),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &HeaderMap::new(), &proxies),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &forwarded("garbage"), &proxies),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(client_ip(None, &headers, &proxies), None);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), &headers, &[]),
            Some(ip("10.0.0.1"))
        );
    }
}

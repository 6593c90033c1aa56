//! The sandbox's network: each build gets a network namespace of its own,
//! joined to the host by a veth pair and NATed out, with no IPv6. Its
//! loopback is its own, so `127.0.0.1` inside a build is not the host's
//! (where berth's database, broker, Kafka and registry listen). The host's
//! firewall ([`berth_common::fence`], on every `bbh*` veth) refuses what a
//! sandbox sends to the host itself, to private, link-local (cloud
//! metadata) and the host's own networks, and lets DNS and the internet
//! through, so package registries keep working. Two sandboxes never share
//! a namespace, and their traffic to each other is refused like any
//! private address.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Host-side veth names start with this, so one firewall rule covers all.
pub const HOST_IF_PREFIX: &str = "bbh";

#[derive(Debug, thiserror::Error)]
#[error("the build sandbox's network could not be set up: `{command}` failed: {detail}")]
pub struct NetError {
    pub command: String,
    pub detail: String,
}

/// One build's namespace and veth pair.
#[derive(Debug)]
pub struct SandboxNet {
    pub name: String,
    host_if: String,
    pub sandbox_addr: Ipv4Addr,
    pub host_addr: Ipv4Addr,
}

impl SandboxNet {
    /// The names and addresses of slot `index` in `pool`.
    pub fn for_slot(pool: &Ipv4Net, index: u32) -> Option<Self> {
        let base = u32::from(pool.network()).checked_add(index.checked_mul(4)?)?;
        let subnet = Ipv4Net::new(Ipv4Addr::from(base), 30).ok()?;
        if !pool.contains(&subnet) {
            return None;
        }
        Some(Self {
            name: format!("berth-build-{index}"),
            host_if: format!("{HOST_IF_PREFIX}{index}"),
            host_addr: Ipv4Addr::from(base + 1),
            sandbox_addr: Ipv4Addr::from(base + 2),
        })
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Makes the namespace afresh (a leftover of a crash is removed first).
    pub async fn create(&self) -> Result<(), NetError> {
        self.remove().await;
        let peer = format!("bbp{}", &self.host_if[HOST_IF_PREFIX.len()..]);
        let host = format!("{}/30", self.host_addr);
        let sandbox = format!("{}/30", self.sandbox_addr);
        let gateway = self.host_addr.to_string();
        let ns = self.name.as_str();
        let steps: [&[&str]; 9] = [
            &["netns", "add", ns],
            &[
                "link",
                "add",
                &self.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "netns",
                ns,
            ],
            &["addr", "add", &host, "dev", &self.host_if],
            &["link", "set", &self.host_if, "up"],
            &["-n", ns, "addr", "add", &sandbox, "dev", &peer],
            &["-n", ns, "link", "set", &peer, "up"],
            &["-n", ns, "link", "set", "lo", "up"],
            &["-n", ns, "route", "add", "default", "via", &gateway],
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        ];
        for step in steps {
            run("ip", step).await?;
        }
        Ok(())
    }

    /// Removes the namespace (and with it the veth pair); quiet when gone.
    pub async fn remove(&self) {
        let _ = run("ip", &["netns", "delete", &self.name]).await;
        let _ = run("ip", &["link", "delete", &self.host_if]).await;
    }
}

async fn run(program: &str, arguments: &[&str]) -> Result<(), NetError> {
    berth_common::fence::run(program, arguments)
        .await
        .map_err(|e| NetError {
            command: e.command,
            detail: e.detail,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slot_gets_its_own_slash_30() {
        let pool: Ipv4Net = "10.250.0.0/16".parse().unwrap();
        let first = SandboxNet::for_slot(&pool, 0).unwrap();
        assert_eq!(first.host_addr, Ipv4Addr::new(10, 250, 0, 1));
        assert_eq!(first.sandbox_addr, Ipv4Addr::new(10, 250, 0, 2));
        assert_eq!(first.name, "berth-build-0");
        let later = SandboxNet::for_slot(&pool, 70).unwrap();
        assert_eq!(later.sandbox_addr, Ipv4Addr::new(10, 250, 1, 26));
        assert!(SandboxNet::for_slot(&pool, 16384).is_none());
    }
}

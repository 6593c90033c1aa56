//! The sandbox's network: each build gets a network namespace of its own,
//! joined to the host by a veth pair and NATed out, with no IPv6. Its
//! loopback is its own, so `127.0.0.1` inside a build is not the host's
//! (where berth's database, broker, Kafka and registry listen). The host's
//! firewall (installed once by [`Fence::install`], iptables) drops
//! everything a sandbox sends to the host itself and refuses private,
//! link-local (cloud metadata) and the host's own networks, letting DNS
//! to the configured resolvers and the public internet through, so package
//! registries keep working. Two sandboxes never share a namespace, and
//! their traffic to each other is refused like any private address.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use tokio::process::Command;

/// Host-side veth names start with this, so one firewall rule covers all.
pub const HOST_IF_PREFIX: &str = "bbh";
const CHAIN_IN: &str = "BERTH-BUILD-IN";
const CHAIN_OUT: &str = "BERTH-BUILD-OUT";

#[derive(Debug, thiserror::Error)]
#[error("the build sandbox's network could not be set up: `{command}` failed: {detail}")]
pub struct NetError {
    pub command: String,
    pub detail: String,
}

/// The firewall all sandboxes share.
#[derive(Debug, Clone)]
pub struct Fence {
    pub pool: Ipv4Net,
    pub dns: Vec<Ipv4Addr>,
    /// Refused destinations, the host's own networks included.
    pub deny: Vec<Ipv4Net>,
}

impl Fence {
    /// The `iptables` argument lists that make the fence, in order. The
    /// host's own addresses need no list: traffic to any of them arrives on
    /// INPUT, where everything from a sandbox is refused.
    pub fn rules(&self) -> Vec<Vec<String>> {
        let mut rules: Vec<Vec<String>> = vec![
            args(&[
                "-A",
                CHAIN_IN,
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ]),
            args(&[
                "-A",
                CHAIN_IN,
                "-p",
                "tcp",
                "-j",
                "REJECT",
                "--reject-with",
                "tcp-reset",
            ]),
            args(&[
                "-A",
                CHAIN_IN,
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-admin-prohibited",
            ]),
        ];
        for server in &self.dns {
            for proto in ["udp", "tcp"] {
                rules.push(args(&[
                    "-A",
                    CHAIN_OUT,
                    "-d",
                    &server.to_string(),
                    "-p",
                    proto,
                    "--dport",
                    "53",
                    "-j",
                    "ACCEPT",
                ]));
            }
        }
        for net in &self.deny {
            rules.push(args(&[
                "-A",
                CHAIN_OUT,
                "-d",
                &net.to_string(),
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-net-prohibited",
            ]));
        }
        rules.push(args(&["-A", CHAIN_OUT, "-j", "ACCEPT"]));
        rules
    }

    /// Installs (or refreshes) the fence: the two chains, replaced in one
    /// atomic `iptables-restore` so a running build is never unfenced, the
    /// jumps to them at the top of INPUT and FORWARD, and NAT for the pool.
    /// Idempotent; `lock` serialises workers of one host.
    pub async fn install(&self, lock: &std::path::Path) -> Result<(), NetError> {
        let failed = |command: &str, error: &dyn std::fmt::Display| NetError {
            command: command.to_owned(),
            detail: error.to_string(),
        };
        let lock = std::fs::File::create(lock).map_err(|e| failed("lock the fence", &e))?;
        let _guard = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| failed("lock the fence", &e))?
            .map_err(|e| failed("lock the fence", &e))?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| failed("enable IPv4 forwarding", &e))?;
        restore(&self.restore_text()).await?;
        let host_ifs = format!("{HOST_IF_PREFIX}+");
        let pool = self.pool.to_string();
        let jumps: [&[&str]; 4] = [
            &["INPUT", "-i", &host_ifs, "-j", CHAIN_IN],
            &["FORWARD", "-i", &host_ifs, "-j", CHAIN_OUT],
            &[
                "FORWARD",
                "-o",
                &host_ifs,
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ],
            &["FORWARD", "-o", &host_ifs, "-j", "DROP"],
        ];
        // Inserted at the top, in reverse, so they end up in this order
        // before any rule of the container engine's.
        for jump in jumps.iter().rev() {
            ensure("filter", jump, true).await?;
        }
        ensure(
            "nat",
            &[
                "POSTROUTING",
                "-s",
                &pool,
                "!",
                "-d",
                &pool,
                "-j",
                "MASQUERADE",
            ],
            false,
        )
        .await
    }

    /// The `iptables-restore` input that replaces both chains at once.
    pub fn restore_text(&self) -> String {
        let mut text = format!("*filter\n:{CHAIN_IN} - [0:0]\n:{CHAIN_OUT} - [0:0]\n");
        for rule in self.rules() {
            text.push_str(&rule.join(" "));
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        text
    }
}

async fn restore(text: &str) -> Result<(), NetError> {
    use tokio::io::AsyncWriteExt;
    let failed = |detail: String| NetError {
        command: "iptables-restore --noflush".into(),
        detail,
    };
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(text.as_bytes())
        .await
        .map_err(|e| failed(e.to_string()))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
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

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Adds a rule unless `iptables -C` finds it.
async fn ensure(table: &str, rule: &[&str], insert: bool) -> Result<(), NetError> {
    let mut check = vec!["-t", table, "-C"];
    check.extend_from_slice(rule);
    if run("iptables", &check).await.is_ok() {
        return Ok(());
    }
    let mut add = vec!["-t", table, if insert { "-I" } else { "-A" }, rule[0]];
    if insert {
        add.push("1");
    }
    add.extend_from_slice(&rule[1..]);
    run("iptables", &add).await
}

async fn run(program: &str, arguments: &[&str]) -> Result<(), NetError> {
    let command = format!("{program} {}", arguments.join(" "));
    let output = Command::new(program)
        .args(arguments)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .await
        .map_err(|e| NetError {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetError {
            command,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
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

    #[test]
    fn dns_is_let_through_before_private_ranges_are_refused() {
        let fence = Fence {
            pool: "10.250.0.0/16".parse().unwrap(),
            dns: vec![Ipv4Addr::new(10, 255, 255, 53)],
            deny: vec![
                "10.0.0.0/8".parse().unwrap(),
                "169.254.0.0/16".parse().unwrap(),
            ],
        };
        let rules: Vec<String> = fence.rules().iter().map(|r| r.join(" ")).collect();
        let position = |needle: &str| rules.iter().position(|r| r.contains(needle)).unwrap();
        assert!(position("--dport 53") < position("-d 10.0.0.0/8"));
        assert!(position("-d 169.254.0.0/16") < position("BERTH-BUILD-OUT -j ACCEPT"));
        assert_eq!(rules.last().unwrap(), "-A BERTH-BUILD-OUT -j ACCEPT");
        assert!(rules[..3]
            .iter()
            .all(|r| r.starts_with("-A BERTH-BUILD-IN")));
    }
}

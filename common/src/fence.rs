//! Host firewall rules (iptables) that fence tenant code on a single host:
//! the build sandboxes' veths and the tenants' app bridges. Traffic from a
//! fenced interface to the host itself (INPUT) is refused outright, so no
//! address of the host (loopback-only services reached through NAT, a
//! `0.0.0.0` listener, a bridge gateway) answers; traffic through the host
//! (FORWARD) may query the configured DNS servers and reach the internet,
//! and is refused towards private, link-local (cloud metadata), CGNAT and
//! the host's own networks, which covers other tenants' containers and
//! sandboxes too.
//!
//! Each fence owns two chains, replaced in one atomic `iptables-restore`,
//! so a refresh never leaves a running build or app unfenced for a moment.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use std::path::Path;
use tokio::process::Command;

/// Ranges tenant code may never reach besides the host itself: private,
/// loopback, link-local (cloud metadata at 169.254.169.254), CGNAT,
/// benchmarking, multicast and reserved.
pub const DEFAULT_EGRESS_DENY: &str = "0.0.0.0/8,10.0.0.0/8,100.64.0.0/10,127.0.0.0/8,\
169.254.0.0/16,172.16.0.0/12,192.0.0.0/24,192.168.0.0/16,198.18.0.0/15,224.0.0.0/4,240.0.0.0/4";

#[derive(Debug, thiserror::Error)]
#[error("the host firewall could not be set up: `{command}` failed: {detail}")]
pub struct FenceError {
    pub command: String,
    pub detail: String,
}

/// What a fenced interface's traffic may do once it passed the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    /// Accepted here (nothing else routes it: build sandboxes).
    Accept,
    /// Handed back to the rules after the jump (the container engine's own
    /// rules, which accept and masquerade: app bridges).
    Return,
}

#[derive(Debug, Clone)]
pub struct Fence {
    /// The chains are `<chain>-IN` and `<chain>-OUT`.
    pub chain: String,
    /// The fenced interfaces, as iptables names them (`bbh+`).
    pub interfaces: String,
    pub dns: Vec<Ipv4Addr>,
    /// Refused destinations.
    pub deny: Vec<Ipv4Net>,
    /// Traffic between two ports of one bridge (the same tenant's apps)
    /// passes untouched.
    pub same_bridge: bool,
    pub passed: Passed,
    /// Nothing new may enter a fenced interface through the host (a build
    /// sandbox serves no one).
    pub closed_inbound: bool,
    /// Source addresses masqueraded out (the sandboxes' pool).
    pub masquerade: Option<Ipv4Net>,
}

impl Fence {
    fn chain_in(&self) -> String {
        format!("{}-IN", self.chain)
    }

    fn chain_out(&self) -> String {
        format!("{}-OUT", self.chain)
    }

    /// The rules of both chains, in order. The host's own addresses need no
    /// list: traffic to any of them arrives on INPUT, where all is refused.
    pub fn rules(&self) -> Vec<String> {
        let (input, output) = (self.chain_in(), self.chain_out());
        let mut rules = vec![
            format!("-A {input} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"),
            format!("-A {input} -p tcp -j REJECT --reject-with tcp-reset"),
            format!("-A {input} -j REJECT --reject-with icmp-admin-prohibited"),
        ];
        let passed = match self.passed {
            Passed::Accept => "ACCEPT",
            Passed::Return => "RETURN",
        };
        if self.same_bridge {
            rules.push(format!(
                "-A {output} -m physdev --physdev-is-bridged -j {passed}"
            ));
        }
        rules.push(format!(
            "-A {output} -m conntrack --ctstate ESTABLISHED,RELATED -j {passed}"
        ));
        for server in &self.dns {
            for proto in ["udp", "tcp"] {
                rules.push(format!(
                    "-A {output} -d {server}/32 -p {proto} --dport 53 -j {passed}"
                ));
            }
        }
        for net in &self.deny {
            rules.push(format!(
                "-A {output} -d {net} -j REJECT --reject-with icmp-net-prohibited"
            ));
        }
        rules.push(format!("-A {output} -j {passed}"));
        rules
    }

    /// The `iptables-restore` input that replaces both chains at once.
    pub fn restore_text(&self) -> String {
        let mut text = format!(
            "*filter\n:{} - [0:0]\n:{} - [0:0]\n",
            self.chain_in(),
            self.chain_out()
        );
        for rule in self.rules() {
            text.push_str(&rule);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        text
    }

    /// Installs or refreshes the fence: both chains, the jumps to them at
    /// the top of INPUT and FORWARD (and in the engine's admin chains, which
    /// its own rules consult first), NAT for the pool. Idempotent; `lock`
    /// serialises the workers of one host.
    pub async fn install(&self, lock: &Path) -> Result<(), FenceError> {
        let failed = |command: &str, error: &dyn std::fmt::Display| FenceError {
            command: command.to_owned(),
            detail: error.to_string(),
        };
        let lock = std::fs::File::create(lock).map_err(|e| failed("lock the fence", &e))?;
        let _held = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| failed("lock the fence", &e))?
            .map_err(|e| failed("lock the fence", &e))?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| failed("enable IPv4 forwarding", &e))?;
        restore(&self.restore_text()).await?;
        let (input, output) = (self.chain_in(), self.chain_out());
        let ifs = self.interfaces.as_str();
        let mut jumps: Vec<Vec<&str>> = vec![
            vec!["INPUT", "-i", ifs, "-j", &input],
            vec!["FORWARD", "-i", ifs, "-j", &output],
        ];
        if self.closed_inbound {
            jumps.push(vec![
                "FORWARD",
                "-o",
                ifs,
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ]);
            jumps.push(vec!["FORWARD", "-o", ifs, "-j", "DROP"]);
        }
        // Inserted at the top, in reverse, so they end up in this order.
        for jump in jumps.iter().rev() {
            ensure("filter", jump, true).await?;
        }
        // The engines' own chains for an administrator's rules, consulted
        // before their accepts wherever their jump ends up in FORWARD.
        for admin in ["CNI-ADMIN", "DOCKER-USER"] {
            if run("iptables", &["-S", admin]).await.is_ok() {
                ensure("filter", &[admin, "-i", ifs, "-j", &output], true).await?;
            }
        }
        if let Some(pool) = self.masquerade {
            let pool = pool.to_string();
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
            .await?;
        }
        Ok(())
    }
}

/// The non-loopback IPv4 nameservers of a resolv.conf: a loopback resolver
/// cannot serve another network namespace.
pub fn resolv_conf_nameservers(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<Ipv4Addr>().ok())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

/// `deny` plus the IPv4 networks of the host's own interfaces (except
/// those named with `skip_prefix`), as `ip -4 -o addr show` lists them.
pub async fn with_host_networks(mut deny: Vec<Ipv4Net>, skip_prefix: &[&str]) -> Vec<Ipv4Net> {
    let output = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .await
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    for line in output.lines() {
        let mut words = line.split_whitespace();
        let interface = words.nth(1).unwrap_or("");
        if skip_prefix
            .iter()
            .any(|prefix| interface.starts_with(prefix))
        {
            continue;
        }
        let net = words
            .skip_while(|word| *word != "inet")
            .nth(1)
            .and_then(|cidr| cidr.parse::<Ipv4Net>().ok());
        if let Some(net) = net.map(|net| net.trunc()) {
            if !deny.iter().any(|known| known.contains(&net)) {
                deny.push(net);
            }
        }
    }
    deny
}

async fn restore(text: &str) -> Result<(), FenceError> {
    use tokio::io::AsyncWriteExt;
    let failed = |detail: String| FenceError {
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

/// Adds a rule unless `iptables -C` finds it.
async fn ensure(table: &str, rule: &[&str], insert: bool) -> Result<(), FenceError> {
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

/// Runs a system tool with a clean environment.
pub async fn run(program: &str, arguments: &[&str]) -> Result<(), FenceError> {
    let command = format!("{program} {}", arguments.join(" "));
    let output = Command::new(program)
        .args(arguments)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .await
        .map_err(|e| FenceError {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(FenceError {
            command,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(passed: Passed, same_bridge: bool) -> Fence {
        Fence {
            chain: "BERTH-X".into(),
            interfaces: "bt+".into(),
            dns: vec![Ipv4Addr::new(10, 255, 255, 53)],
            deny: vec![
                "10.0.0.0/8".parse().unwrap(),
                "169.254.0.0/16".parse().unwrap(),
            ],
            same_bridge,
            passed,
            closed_inbound: false,
            masquerade: None,
        }
    }

    #[test]
    fn dns_and_same_bridge_traffic_pass_before_private_ranges_are_refused() {
        let rules = fence(Passed::Return, true).rules();
        let position = |needle: &str| rules.iter().position(|r| r.contains(needle)).unwrap();
        assert!(position("--physdev-is-bridged -j RETURN") < position("-d 10.0.0.0/8"));
        assert!(position("--dport 53 -j RETURN") < position("-d 10.0.0.0/8"));
        assert!(position("-d 169.254.0.0/16") < rules.len() - 1);
        assert_eq!(rules.last().unwrap(), "-A BERTH-X-OUT -j RETURN");
        assert!(rules[..3].iter().all(|r| r.starts_with("-A BERTH-X-IN")));
        let accept = fence(Passed::Accept, false).rules();
        assert!(!accept.iter().any(|r| r.contains("physdev")));
        assert_eq!(accept.last().unwrap(), "-A BERTH-X-OUT -j ACCEPT");
    }

    #[test]
    fn the_restore_text_declares_both_chains_then_commits() {
        let text = fence(Passed::Accept, false).restore_text();
        assert!(text.starts_with("*filter\n:BERTH-X-IN - [0:0]\n:BERTH-X-OUT - [0:0]\n"));
        assert!(text.ends_with("-A BERTH-X-OUT -j ACCEPT\nCOMMIT\n"));
    }

    #[test]
    fn loopback_and_v6_nameservers_cannot_serve_another_namespace() {
        let text = "nameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver ::1\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            [Ipv4Addr::new(10, 255, 255, 53)]
        );
    }
}

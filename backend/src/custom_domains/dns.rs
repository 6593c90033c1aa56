//! The DNS check behind a domain's verification: the TXT records at
//! `_berth-challenge.<domain>`. [`TxtLookup`] is the seam; [`SystemDns`]
//! asks the system's resolvers or the one `BERTH_DNS_RESOLVER` names.

use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;
use std::time::Duration;

#[async_trait]
pub trait TxtLookup: Send + Sync + 'static {
    /// The TXT records at `name`, each record's strings joined; empty when
    /// the name has none or does not exist. `Err` is a lookup that failed
    /// (no answer, a server error), with the reason for the user.
    async fn txt(&self, name: &str) -> Result<Vec<String>, String>;
}

pub struct SystemDns {
    resolver: TokioResolver,
}

impl SystemDns {
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Self> {
        let mut options = ResolverOpts::default();
        options.timeout = Duration::from_secs(5);
        options.attempts = 2;
        // A record the user just created must be seen on the next check.
        options.cache_size = 0;
        let builder = match server {
            Some(addr) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| anyhow::anyhow!("the system's DNS settings cannot be read: {e}"))?,
        };
        let resolver = builder.with_options(options).build();
        Ok(Self { resolver })
    }
}

#[async_trait]
impl TxtLookup for SystemDns {
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        // A fully qualified name: never searched under the host's domains.
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.txt_lookup(fqdn).await {
            Ok(found) => Ok(found
                .iter()
                .map(|txt| {
                    txt.txt_data()
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>()
                })
                .collect()),
            Err(error) if error.is_no_records_found() || error.is_nx_domain() => Ok(Vec::new()),
            Err(error) => Err(format!("the DNS lookup of {name} failed: {error}")),
        }
    }
}

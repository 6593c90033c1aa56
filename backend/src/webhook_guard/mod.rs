//! What keeps the unauthenticated webhook endpoints from being used to
//! burn the backend's CPU and memory: a rate limit per client address
//! (before a body is read), and a bound on the signature checks (`signature`)
//! running at once across the process (each hashes a whole body on a
//! blocking thread). Apart from `webhooks` because `AppState` holds the
//! guard, and the webhook handlers take `AppState`.

pub mod signature;
use crate::error::{Error, Result};
use axum::body::Bytes;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Governor's state grows with the addresses seen; past this many keys the
/// ones whose budget is full again are dropped.
const RETAIN_ABOVE: usize = 10_000;
/// How long a delivery waits for a signature check to be free. GitHub
/// gives up on a delivery after 10 s.
const VERIFY_WAIT: Duration = Duration::from_secs(8);

pub struct WebhookGuard {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    verifying: Arc<Semaphore>,
    /// Secrets checked against a body since the process started.
    checked: AtomicU64,
}

/// The key an address is limited by: IPv6 by its /64, which one host
/// usually has whole.
fn rate_key(addr: Option<IpAddr>) -> IpAddr {
    match addr {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
        Some(v4) => v4,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

impl WebhookGuard {
    /// `per_minute` requests a minute per address (all of which may come at
    /// once); `concurrency` signature checks at once.
    pub fn new(per_minute: u32, concurrency: usize) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least 1");
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            verifying: Arc::new(Semaphore::new(concurrency.max(1))),
            checked: AtomicU64::new(0),
        }
    }

    /// Spends one request of the address's budget, before anything of the
    /// request is read; a `429` with `Retry-After` when it is spent.
    pub fn admit(&self, addr: Option<IpAddr>) -> Result<()> {
        if self.limiter.len() > RETAIN_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&rate_key(addr))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                metrics::counter!("berth_webhook_rate_limited_total").increment(1);
                Error::throttled("too many webhook deliveries from this address", wait)
            })
    }

    /// The keys of the `secrets` that signed `body` (`header` is the
    /// `X-Hub-Signature-256` value), checked in constant time on a blocking
    /// thread once one of the process's check slots is free. With no
    /// secret, one decoy check is made, so that case answers no faster.
    pub async fn signed_by<K, S>(
        &self,
        secrets: Vec<(K, S)>,
        body: Bytes,
        header: String,
    ) -> Result<Vec<K>>
    where
        K: Send + 'static,
        S: AsRef<[u8]> + Send + 'static,
    {
        let permit = tokio::time::timeout(VERIFY_WAIT, self.verifying.clone().acquire_owned())
            .await
            .map_err(|_| {
                metrics::counter!("berth_webhook_verify_busy_total").increment(1);
                Error::throttled(
                    "too many webhook deliveries are being checked",
                    Duration::from_secs(5),
                )
            })?
            .map_err(|_| Error::internal("the signature checks were closed"))?;
        let checks = secrets.len().max(1) as u64;
        self.checked.fetch_add(checks, Ordering::Relaxed);
        metrics::counter!("berth_webhook_signature_checks_total").increment(checks);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if secrets.is_empty() {
                let mut decoy = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut decoy);
                signature::verify(&decoy, &body, &header);
            }
            secrets
                .into_iter()
                .filter(|(_, secret)| signature::verify(secret.as_ref(), &body, &header))
                .map(|(key, _)| key)
                .collect()
        })
        .await
        .map_err(|_| Error::internal("the signature check did not finish"))
    }

    /// Secrets checked against a body since the process started (decoys
    /// included): what a delivery costs, for tests and `/metrics`.
    pub fn signature_checks(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_limited_each_and_ipv6_by_its_64() {
        let guard = WebhookGuard::new(2, 1);
        let a = Some("192.0.2.1".parse().unwrap());
        assert!(guard.admit(a).is_ok());
        assert!(guard.admit(a).is_ok());
        assert!(matches!(guard.admit(a), Err(Error::Throttled { .. })));
        assert!(guard.admit(Some("192.0.2.2".parse().unwrap())).is_ok());
        let v6 = |s: &str| Some(s.parse().unwrap());
        assert!(guard.admit(v6("2001:db8:1:2::1")).is_ok());
        assert!(guard.admit(v6("2001:db8:1:2::ffff")).is_ok());
        assert!(guard.admit(v6("2001:db8:1:2:abcd::9")).is_err());
        assert_eq!(
            rate_key(v6("::ffff:192.0.2.9")),
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn checks_are_counted_and_only_signers_are_kept() {
        let guard = WebhookGuard::new(10, 1);
        let body = Bytes::from_static(b"payload");
        let header = signature::sign(b"right", &body);
        let secrets = vec![(1, b"wrong".to_vec()), (2, b"right".to_vec())];
        let signed = guard
            .signed_by(secrets, body.clone(), header.clone())
            .await
            .unwrap();
        assert_eq!(signed, [2]);
        assert_eq!(guard.signature_checks(), 2);
        let none: Vec<(u8, Vec<u8>)> = Vec::new();
        assert!(guard
            .signed_by(none, body, header)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(guard.signature_checks(), 3, "the decoy counts");
    }
}

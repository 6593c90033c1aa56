//! Checks custom domains until they are verified, and looks at the
//! certificate the router serves for each verified one: every
//! `BERTH_DOMAIN_CHECK_INTERVAL_SECS`, and at once when a domain is added
//! or verified. Every replica runs it; the checks are idempotent, so two
//! replicas checking the same domain only cost a DNS lookup.

use crate::custom_domains::{self, certificate, store, Domains};
use chrono::Utc;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Domains looked at per pass, of each kind.
const BATCH: i64 = 50;
/// How often a served certificate is looked at again (the router renews
/// it by itself; this keeps the expiry the UI shows current).
const CERTIFICATE_RECHECK: Duration = Duration::from_secs(12 * 3600);

pub struct DomainChecks {
    db: PgPool,
    domains: Arc<Domains>,
}

impl DomainChecks {
    pub fn new(db: PgPool, domains: Arc<Domains>) -> Self {
        Self { db, domains }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.domains.check_now.clone();
        super::every_or_when(self.domains.interval, Some(wake), shutdown, || async {
            if let Err(error) = self.pass().await {
                tracing::warn!(%error, "could not check custom domains");
            }
        })
        .await;
    }

    /// One pass: DNS checks of unverified domains, then certificates.
    pub async fn pass(&self) -> crate::error::Result<()> {
        let interval = chrono::Duration::from_std(self.domains.interval).unwrap_or_default();
        // A domain just checked by the API is not checked again at once.
        let due = store::due_checks(&self.db, Utc::now() - interval / 2, BATCH).await?;
        let mut verified = 0;
        for domain in &due {
            if custom_domains::check_ownership(&self.db, self.domains.dns.as_ref(), domain).await? {
                verified += 1;
            }
        }
        if verified > 0 {
            self.domains.routes_changed.notify_one();
        }
        let Some(router) = self.domains.tls else {
            return Ok(());
        };
        let now = Utc::now();
        let recheck = chrono::Duration::from_std(CERTIFICATE_RECHECK).unwrap_or_default();
        let certificates =
            store::due_certificates(&self.db, now - recheck, now - interval, BATCH).await?;
        for domain in &certificates {
            let seen = certificate::served(router, &domain.hostname).await;
            match &seen {
                Ok(served) => tracing::info!(hostname = %domain.hostname, issuer = %served.issuer,
                    expires_at = %served.expires_at, "the router serves a certificate"),
                Err(why) => tracing::info!(hostname = %domain.hostname, %why, "no certificate yet"),
            }
            store::record_certificate(&self.db, domain.id, &seen).await?;
        }
        Ok(())
    }
}

//! Custom domains as the API shows them.

use crate::custom_domains::store::DomainRow;
use crate::custom_domains::{challenge_name, challenge_value, Domains};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDomain {
    /// A fully qualified name, e.g. `www.example.com`.
    #[schema(example = "www.example.com")]
    pub hostname: String,
    /// Only `production` exists yet.
    #[serde(default)]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// Waiting for the TXT record; berth checks again every half minute.
    PendingVerification,
    /// Proven: the router answers for it.
    Verified,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CertificateState {
    /// HTTPS is not set up on this installation: served over plain HTTP.
    NotApplicable,
    /// Waiting for verification, or for the certificate authority.
    Pending,
    /// The router serves a certificate for the domain.
    Issued,
    /// The last attempt failed; `error` says why, and the router keeps
    /// trying.
    Failed,
}

/// A DNS record the domain's owner creates at their DNS provider.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct DnsRecord {
    /// `TXT`, `CNAME`, `A` or `AAAA`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub value: String,
    /// What the record is for, in words.
    pub purpose: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    pub checked_at: Option<DateTime<Utc>>,
    /// Why the domain is not verified yet, from the last check.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Certificate {
    pub state: CertificateState,
    /// Who issued the certificate the router serves (e.g. `R11`).
    pub issuer: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub checked_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Domain {
    pub hostname: String,
    pub environment: String,
    pub status: DomainStatus,
    /// Where the app answers on this domain once verified.
    pub url: String,
    /// The records to create: the proof of ownership (TXT), and the record
    /// that sends the domain's traffic to berth.
    pub dns_records: Vec<DnsRecord>,
    pub verification: Verification,
    pub certificate: Certificate,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Domain {
    pub fn new(row: DomainRow, domains: &Domains, app: &str, tenant: &str) -> Self {
        let status = if row.verified_at.is_some() {
            DomainStatus::Verified
        } else {
            DomainStatus::PendingVerification
        };
        let certificate = certificate(&row, domains.tls.is_some(), status);
        let scheme = if domains.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut dns_records = vec![DnsRecord {
            kind: "TXT".into(),
            name: challenge_name(&row.hostname),
            value: challenge_value(&row.verification_token),
            purpose: "proves you control the domain; keep it while the domain is in use".into(),
        }];
        dns_records.push(traffic_record(&row.hostname, domains, app, tenant));
        Self {
            url: format!("{scheme}://{}", row.hostname),
            hostname: row.hostname,
            environment: row.environment,
            status,
            dns_records,
            verification: Verification {
                checked_at: row.checked_at,
                error: row.check_error,
            },
            certificate,
            verified_at: row.verified_at,
            created_at: row.created_at,
        }
    }
}

/// The record that sends the domain to berth's router: an `A`/`AAAA` to
/// the operator's address, else a `CNAME` to the operator's target or the
/// app's own hostname.
fn traffic_record(hostname: &str, domains: &Domains, app: &str, tenant: &str) -> DnsRecord {
    let target = domains
        .target
        .clone()
        .unwrap_or_else(|| domains.app_host(app, tenant));
    let kind = match target.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => "A",
        Ok(std::net::IpAddr::V6(_)) => "AAAA",
        Err(_) => "CNAME",
    };
    DnsRecord {
        kind: kind.into(),
        name: hostname.to_owned(),
        value: target,
        purpose: "sends the domain's visitors to this app (for a domain's apex, where a CNAME \
                  is not allowed, use your provider's ALIAS or ANAME record, or an A record \
                  to the server's address)"
            .into(),
    }
}

fn certificate(row: &DomainRow, tls: bool, status: DomainStatus) -> Certificate {
    let state = match (tls, status) {
        (false, _) => CertificateState::NotApplicable,
        (true, DomainStatus::PendingVerification) => CertificateState::Pending,
        (true, DomainStatus::Verified) if row.certificate_error.is_some() => {
            CertificateState::Failed
        }
        (true, DomainStatus::Verified) if row.certificate_expires_at.is_some() => {
            CertificateState::Issued
        }
        (true, DomainStatus::Verified) => CertificateState::Pending,
    };
    Certificate {
        state,
        issuer: row.certificate_issuer.clone(),
        expires_at: row.certificate_expires_at,
        checked_at: row.certificate_checked_at,
        error: row.certificate_error.clone(),
    }
}

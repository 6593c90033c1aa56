//! Slowing down guessing and flooding on the endpoints anyone can call:
//!
//! * a rate limit per client address on login, register and password reset
//!   (in memory, per backend process: `BERTH_AUTH_RATE_LIMIT` a minute);
//! * a backoff per login name after repeated failed sign-ins, kept in
//!   PostgreSQL so every backend process sees it. It counts names as typed,
//!   known or not, so being blocked says nothing about whether an account
//!   exists. The `FREE_FAILURES`-th failure in a day blocks the name for
//!   `FIRST_BLOCK`, each further one doubles that, up to `MAX_BLOCK`; a
//!   success clears it.
//!
//! The backoff trades a little availability (someone can keep a known login
//! blocked for up to `MAX_BLOCK` at a time) for a hard cap on guesses: about
//! a hundred a day per login name, whatever the number of attacking
//! addresses.

use crate::error::{Error, Result};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sqlx::{PgConnection, PgPool};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Duration;

pub const FREE_FAILURES: i32 = 5;
pub const FIRST_BLOCK: Duration = Duration::from_secs(30);
pub const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FAILURE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The public endpoints with their own budget per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guarded {
    Login,
    Register,
    PasswordReset,
}

/// Governor's state grows with the addresses seen; past this many keys the
/// ones whose budget is full again are dropped.
const RETAIN_ABOVE: usize = 10_000;

pub struct AuthLimiter {
    limiter: DefaultKeyedRateLimiter<(Guarded, IpAddr)>,
}

impl AuthLimiter {
    /// `per_minute` requests a minute per address and endpoint, all of
    /// which may come at once.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least 1");
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Spends one request of the address's budget; refused with the time to
    /// wait when it is spent. Requests without a known address share one.
    pub fn check(&self, route: Guarded, addr: Option<IpAddr>) -> Result<()> {
        if self.limiter.len() > RETAIN_ABOVE {
            self.limiter.retain_recent();
        }
        let addr = addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.limiter.check_key(&(route, addr)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("berth_auth_rate_limited_total").increment(1);
            Error::throttled("too many requests from this address", wait)
        })
    }
}

/// How a login name is keyed: trimmed and lowercased, as emails match.
pub fn login_key(login: &str) -> String {
    login.trim().to_lowercase()
}

/// The wait before `login` may try again, if it is blocked.
pub async fn login_blocked(db: &PgPool, login: &str) -> Result<Option<Duration>> {
    let seconds = sqlx::query_scalar::<_, f64>(
        "SELECT EXTRACT(EPOCH FROM blocked_until - now())::float8 FROM login_failures
         WHERE login = $1 AND blocked_until > now()",
    )
    .bind(login_key(login))
    .fetch_optional(db)
    .await?;
    Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0).ceil())))
}

/// The block after the `failures`-th failure in a row.
pub fn block_after(failures: i32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(20) as u32;
    (FIRST_BLOCK * (1u32 << doublings)).min(MAX_BLOCK)
}

/// Counts a failed sign-in for `login` and returns how long it is blocked.
pub async fn record_login_failure(conn: &mut PgConnection, login: &str) -> Result<Duration> {
    let failures = sqlx::query_scalar::<_, i32>(
        "INSERT INTO login_failures (login, failures, last_failed_at, blocked_until)
         VALUES ($1, 1, now(), now())
         ON CONFLICT (login) DO UPDATE SET
           failures = CASE
             WHEN login_failures.last_failed_at < now() - make_interval(secs => $2)
             THEN 1 ELSE login_failures.failures + 1 END,
           last_failed_at = now()
         RETURNING failures",
    )
    .bind(login_key(login))
    .bind(FAILURE_WINDOW.as_secs_f64())
    .fetch_one(&mut *conn)
    .await?;
    let block = block_after(failures);
    sqlx::query(
        "UPDATE login_failures SET blocked_until = now() + make_interval(secs => $2)
         WHERE login = $1",
    )
    .bind(login_key(login))
    .bind(block.as_secs_f64())
    .execute(&mut *conn)
    .await?;
    Ok(block)
}

/// Forgets the failures of these login names (after a success or a reset).
pub async fn clear_login_failures(conn: &mut PgConnection, logins: &[&str]) -> Result<()> {
    let keys: Vec<String> = logins.iter().map(|login| login_key(login)).collect();
    sqlx::query("DELETE FROM login_failures WHERE login = ANY($1)")
        .bind(keys)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_doubles_after_the_free_failures_up_to_the_cap() {
        assert_eq!(block_after(1), Duration::ZERO);
        assert_eq!(block_after(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(block_after(FREE_FAILURES), FIRST_BLOCK);
        assert_eq!(block_after(FREE_FAILURES + 3), FIRST_BLOCK * 8);
        assert_eq!(block_after(FREE_FAILURES + 10), MAX_BLOCK);
        assert_eq!(block_after(i32::MAX), MAX_BLOCK);
    }

    #[test]
    fn the_rate_limit_is_per_address_and_endpoint() {
        let limiter = AuthLimiter::new(2);
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        assert!(limiter.check(Guarded::Login, a).is_ok());
        assert!(limiter.check(Guarded::Login, a).is_ok());
        let refused = limiter.check(Guarded::Login, a).unwrap_err();
        assert_eq!(refused.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(limiter.check(Guarded::Login, b).is_ok());
        assert!(limiter.check(Guarded::Register, a).is_ok());
    }

    #[test]
    fn login_names_are_keyed_case_insensitively() {
        assert_eq!(login_key("  Alice@Example.TEST "), "alice@example.test");
    }
}

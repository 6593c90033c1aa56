//! Slowing down guessing and flooding on the endpoints anyone can call:
//!
//! * a rate limit per client on login, register and password reset
//!   (`BERTH_AUTH_RATE_LIMIT` a minute), kept in PostgreSQL so that every
//!   backend replica spends from the same budget. A client is its IPv4
//!   address, or its IPv6 /64 (one subscriber usually holds a whole /64,
//!   and could otherwise rotate through it for fresh budgets);
//! * a backoff per login name after repeated failed sign-ins, kept in
//!   PostgreSQL too. A name that belongs to an account counts as that
//!   account (its username and its email are one name, so they do not get
//!   two budgets); any other name counts as typed, known or not, so being
//!   blocked says nothing about whether an account exists. The
//!   `FREE_FAILURES`-th failure in a day blocks the name for `FIRST_BLOCK`,
//!   each further one doubles that, up to `MAX_BLOCK`; a success clears it.
//!
//! The backoff trades a little availability (someone can keep a known login
//! blocked for up to `MAX_BLOCK` at a time) for a hard cap on guesses: about
//! a hundred a day per account, whatever the number of attacking
//! addresses. Counting an account's two names as one also means that
//! blocking one blocks the other, which tells someone who already guessed
//! both that they belong together; the audit log shows the account's owner
//! every failed attempt.

use crate::error::{Error, Result};
use sqlx::{PgConnection, PgPool};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

pub const FREE_FAILURES: i32 = 5;
pub const FIRST_BLOCK: Duration = Duration::from_secs(30);
pub const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten (and pruned by the reaper).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The public endpoints with their own budget per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guarded {
    Login,
    Register,
    PasswordReset,
}

impl Guarded {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// The window a budget refills over.
const PERIOD: Duration = Duration::from_secs(60);

/// `per_minute` requests a minute per client and endpoint, all of which
/// may come at once: the GCRA (as `governor` does it), with each client's
/// theoretical arrival time in the `auth_rate_limits` table. Spending is
/// one statement, atomic under the row's lock, so replicas cannot both
/// spend the last request.
pub struct AuthLimiter {
    db: PgPool,
    per_minute: u32,
}

impl AuthLimiter {
    pub fn new(db: PgPool, per_minute: u32) -> Self {
        Self {
            db,
            per_minute: per_minute.max(1),
        }
    }

    /// Spends one request of the client's budget; refused with the time to
    /// wait when it is spent. Requests without a known address share one.
    pub async fn check(&self, route: Guarded, addr: Option<IpAddr>) -> Result<()> {
        let interval = PERIOD.as_secs_f64() / f64::from(self.per_minute);
        let client = client_key(addr);
        let spent: bool = sqlx::query_scalar(
            "WITH spent AS (
                INSERT INTO auth_rate_limits AS l (route, client, tat)
                VALUES ($1, $2, now() + make_interval(secs => $3))
                ON CONFLICT (route, client) DO UPDATE
                    SET tat = GREATEST(l.tat, now()) + make_interval(secs => $3)
                    WHERE GREATEST(l.tat, now()) <= now() + make_interval(secs => $4 - $3)
                RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM spent)",
        )
        .bind(route.as_str())
        .bind(&client)
        .bind(interval)
        .bind(PERIOD.as_secs_f64())
        .fetch_one(&self.db)
        .await?;
        if spent {
            return Ok(());
        }
        // The next request fits once the arrival time is a period (less one
        // interval) away.
        let wait: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM tat - now())::float8 - ($3 - $4)
             FROM auth_rate_limits WHERE route = $1 AND client = $2",
        )
        .bind(route.as_str())
        .bind(&client)
        .bind(PERIOD.as_secs_f64())
        .bind(interval)
        .fetch_optional(&self.db)
        .await?;
        metrics::counter!("berth_auth_rate_limited_total").increment(1);
        let wait = Duration::from_secs_f64(wait.unwrap_or(interval).max(0.0));
        Err(Error::throttled(
            "too many requests from this address",
            wait,
        ))
    }
}

/// Whom a budget belongs to: an IPv4 address (also when it comes mapped
/// into IPv6), an IPv6 /64, or `unknown`.
pub fn client_key(addr: Option<IpAddr>) -> String {
    let addr = addr.map(|addr| match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    });
    match addr {
        None => "unknown".into(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let network = Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64));
            format!("{network}/64")
        }
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
    fn clients_are_ipv4_addresses_or_ipv6_64s() {
        let key = |addr: &str| client_key(Some(addr.parse().unwrap()));
        assert_eq!(key("192.0.2.1"), "192.0.2.1");
        assert_eq!(key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(key("2001:db8::1"), "2001:db8::/64");
        assert_eq!(key("2001:db8::2"), key("2001:db8::1"));
        assert_eq!(key("2001:db8:0:0:ffff:ffff:ffff:ffff"), "2001:db8::/64");
        assert_ne!(key("2001:db8:0:1::1"), key("2001:db8::1"));
        assert_eq!(client_key(None), "unknown");
    }

    #[test]
    fn login_names_are_keyed_case_insensitively() {
        assert_eq!(login_key("  Alice@Example.TEST "), "alice@example.test");
    }
}

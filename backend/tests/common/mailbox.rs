//! The local stack's SMTP sink (aiosmtpd) keeps every message in a Maildir
//! (`BERTH_MAIL_DIR`); tests find theirs by recipient, which each test makes
//! unique.

use berth_backend::mail::SmtpMailer;
use berth_common::testing::setting;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A mailer that sends to the stack's SMTP sink.
pub fn smtp_mailer() -> SmtpMailer {
    SmtpMailer::new(&setting("BERTH_SMTP_URL"), "berth <berth@localhost>")
        .expect("BERTH_SMTP_URL is usable")
}

/// The messages delivered to `to` so far, raw (headers and body).
pub fn messages_to(to: &str) -> Vec<String> {
    let dir = PathBuf::from(setting("BERTH_MAIL_DIR")).join("new");
    let wanted = format!("X-RcptTo: {}", to.to_lowercase());
    let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the SMTP sink's Maildir {} is readable: {e}", dir.display()))
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let text = std::fs::read_to_string(entry.path()).ok()?;
            let to_us = text
                .lines()
                .any(|line| line.to_lowercase().starts_with(&wanted.to_lowercase()));
            let modified = entry.metadata().ok()?.modified().ok()?;
            to_us.then_some((modified, text))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, text)| text).collect()
}

/// Waits (up to 10 s) for the `n`-th message to `to` and returns it.
pub async fn wait_for_message(to: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let messages = messages_to(to);
        if messages.len() >= n {
            return messages[n - 1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no message {n} to {to} reached the SMTP sink within 10 s ({} so far)",
            messages.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The reset token in a password reset mail (after `#token=`).
pub fn reset_token(message: &str) -> String {
    let (_, rest) = message
        .split_once("#token=")
        .unwrap_or_else(|| panic!("no reset link in the mail:\n{message}"));
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

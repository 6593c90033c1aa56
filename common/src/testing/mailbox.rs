//! The local stack's SMTP sink (aiosmtpd) keeps every message in a Maildir
//! (`BERTH_MAIL_DIR`); tests find theirs by recipient, which each test makes
//! unique.

use super::setting;
use mailparse::MailHeaderMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A message as the SMTP sink received it, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub from: String,
    /// The body, its transfer encoding (quoted-printable, say) undone.
    pub body: String,
}

/// The messages delivered to `to` so far, oldest first.
pub fn messages_to(to: &str) -> Vec<Mail> {
    let dir = PathBuf::from(setting("BERTH_MAIL_DIR")).join("new");
    let mut found: Vec<(std::time::SystemTime, Mail)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the SMTP sink's Maildir {} is readable: {e}", dir.display()))
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let raw = std::fs::read(entry.path()).ok()?;
            let parsed = mailparse::parse_mail(&raw).ok()?;
            let headers = parsed.get_headers();
            // aiosmtpd records the envelope's recipients in X-RcptTo.
            let recipients = headers.get_first_value("X-RcptTo")?.to_lowercase();
            if !recipients.split(',').any(|r| r.trim() == to.to_lowercase()) {
                return None;
            }
            let mail = Mail {
                subject: headers.get_first_value("Subject").unwrap_or_default(),
                from: headers.get_first_value("From").unwrap_or_default(),
                body: parsed.get_body().ok()?,
            };
            Some((entry.metadata().ok()?.modified().ok()?, mail))
        })
        .collect();
    found.sort_by_key(|(modified, _)| *modified);
    found.into_iter().map(|(_, mail)| mail).collect()
}

/// Waits (up to 10 s) for the `n`-th message to `to` and returns it.
pub async fn wait_for_message(to: &str, n: usize) -> Mail {
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

/// The token in an account mail (from the API request it shows).
pub fn token_in(mail: &Mail) -> String {
    let (_, rest) = mail
        .body
        .split_once("{\"token\": \"")
        .unwrap_or_else(|| panic!("no token in the mail:\n{}", mail.body));
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

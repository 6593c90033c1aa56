//! Outgoing mail (password reset links). The account code talks to the
//! `Mailer` trait; SMTP through lettre is the one transport.

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0:?} is not an address mail can be sent to")]
    InvalidAddress(String),
    /// The server refused the message for good (5xx): retrying is useless.
    #[error("the mail server refused the message: {0}")]
    Refused(String),
    /// The server could not be reached or asked to try later.
    #[error("the mail server is unavailable: {0}")]
    Unavailable(String),
}

impl MailError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// Mail through an SMTP server: `smtp://host:port` (plain, local relays),
/// `smtp://user:pass@host:587?tls=required` (STARTTLS) or
/// `smtps://user:pass@host` (TLS), as lettre reads them.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("BERTH_MAIL_FROM {from:?} is not a mailbox: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("BERTH_SMTP_URL is not a usable SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(15)))
            .build();
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::InvalidAddress(email.to.clone()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&email.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| MailError::Refused(format!("the message cannot be built: {e}")))?;
        self.transport.send(message).await.map(drop).map_err(|e| {
            if e.is_permanent() {
                MailError::Refused(e.to_string())
            } else {
                MailError::Unavailable(e.to_string())
            }
        })
    }
}

/// Sends `email` in the background, retrying a mail server that is
/// unavailable (after 1 s, 4 s, 16 s). The caller answers at once, so a
/// response never takes longer because mail was sent (or was not).
pub fn send_later(mailer: Arc<dyn Mailer>, email: Email, purpose: &'static str) {
    tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=4 {
            match mailer.send(&email).await {
                Ok(()) => {
                    metrics::counter!("berth_mail_sent_total", "purpose" => purpose).increment(1);
                    return;
                }
                Err(error) if error.is_permanent() || attempt == 4 => {
                    metrics::counter!("berth_mail_failed_total", "purpose" => purpose).increment(1);
                    tracing::error!(%error, purpose, attempt, "mail was not sent");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, purpose, attempt, "mail not sent yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
            }
        }
    });
}

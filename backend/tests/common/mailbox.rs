//! Mail the tests read back from the local stack's SMTP sink.

use berth_backend::mail::SmtpMailer;
// Each test binary uses its own share of these.
#[allow(unused_imports)]
pub use berth_common::testing::mailbox::{messages_to, token_in, wait_for_message, Mail};
use berth_common::testing::setting;

/// A mailer that sends to the stack's SMTP sink.
pub fn smtp_mailer() -> SmtpMailer {
    SmtpMailer::new(&setting("BERTH_SMTP_URL"), "berth <berth@localhost>")
        .expect("BERTH_SMTP_URL is usable")
}

//! The account mails. Each carries a link into the web UI when berth knows
//! its public URL, and always the API request that does the same, for
//! people who drive berth from a terminal.

use crate::mail::Email;
use std::time::Duration;

/// Where berth answers (`BERTH_PUBLIC_URL`), if it knows.
pub struct Links<'a>(pub Option<&'a str>);

impl Links<'_> {
    /// How to use `token` within `ttl`: open the UI's `page`, or send it to
    /// `api` with `fields` beside it.
    fn token_steps(
        &self,
        page: &str,
        api: &str,
        token: &str,
        fields: &str,
        ttl: Duration,
    ) -> String {
        let within = within(ttl);
        let base = self.0.unwrap_or("");
        let open = match self.0 {
            Some(base) => format!(
                "open this link within {within}:\n\n{base}{page}#token={token}\n\nOr send the token to the API:\n"
            ),
            None => format!("send this to the API within {within}:\n"),
        };
        format!("{open}POST {base}{api}\n{{\"token\": \"{token}\"{fields}}}\n")
    }

    fn page(&self, path: &str) -> String {
        format!("{}{path}", self.0.unwrap_or(""))
    }
}

fn within(ttl: Duration) -> String {
    let minutes = ttl.as_secs() / 60;
    if minutes >= 120 && minutes.is_multiple_of(60) {
        format!("{} hours", minutes / 60)
    } else {
        format!("{minutes} minutes")
    }
}

pub fn password_reset(
    links: &Links,
    to: &str,
    username: &str,
    token: &str,
    ttl: Duration,
) -> Email {
    let steps = links.token_steps(
        "/reset-password",
        "/api/v1/auth/password-reset/confirm",
        token,
        ", \"new_password\": \"(the new password)\"",
        ttl,
    );
    Email {
        to: to.to_owned(),
        subject: "Reset your berth password".into(),
        body: format!(
            "Someone asked to reset the password of the berth account {username}.\n\n\
             To choose a new password: {steps}\n\
             The token works once. Choosing a new password signs out every session.\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\n"
        ),
    }
}

pub fn confirm_registration(
    links: &Links,
    to: &str,
    username: &str,
    token: &str,
    ttl: Duration,
) -> Email {
    let steps = links.token_steps(
        "/confirm-registration",
        "/api/v1/auth/register/confirm",
        token,
        ", \"password\": \"(the password you signed up with)\"",
        ttl,
    );
    Email {
        to: to.to_owned(),
        subject: "Confirm your berth account".into(),
        body: format!(
            "Someone signed up for berth as {username} with this address.\n\n\
             To confirm the address and finish signing up with the password you chose, {steps}\n\
             If it was not you, ignore this mail: no account is made, and nobody can finish \
             this sign-up without both this mail and that password.\n"
        ),
    }
}

/// To the owner of an address someone tried to sign up with again.
pub fn already_registered(links: &Links, to: &str, username: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: "You already have a berth account".into(),
        body: format!(
            "Someone tried to sign up for berth with this address, which already belongs to \
             the account {username}. Nothing was changed.\n\n\
             Sign in: {sign_in}\n\
             Forgot the password? Choose a new one: {forgot}\n\n\
             If it was not you, ignore this mail.\n",
            sign_in = links.page("/sign-in"),
            forgot = links.page("/forgot-password"),
        ),
    }
}

pub fn username_taken(links: &Links, to: &str, username: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: "Choose another berth username".into(),
        body: format!(
            "Someone signed up for berth with this address as {username}, but that username \
             is taken. No account was made.\n\n\
             Sign up again with another username: {register}\n\n\
             If it was not you, ignore this mail.\n",
            register = links.page("/register"),
        ),
    }
}

pub fn confirm_email_change(
    links: &Links,
    to: &str,
    username: &str,
    token: &str,
    ttl: Duration,
) -> Email {
    let steps = links.token_steps(
        "/confirm-email",
        "/api/v1/auth/email-change/confirm",
        token,
        "",
        ttl,
    );
    Email {
        to: to.to_owned(),
        subject: "Confirm your new berth email address".into(),
        body: format!(
            "The berth account {username} asked to use this address from now on.\n\n\
             To confirm it, {steps}\n\
             Until then the account keeps its old address. If it was not you, ignore this mail.\n"
        ),
    }
}

/// To the old address of an account whose address just changed.
pub fn email_changed(links: &Links, to: &str, username: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: "Your berth account has a new email address".into(),
        body: format!(
            "The berth account {username} now uses another email address; this one gets no \
             more mail about it.\n\n\
             If it was not you, sign in and change your password (it signs out every session), \
             then set your address back: {account}\n\
             If you cannot sign in any more, ask the operator of this berth for help.\n",
            account = links.page("/account"),
        ),
    }
}

/// To an address another account asked to move to, which is already taken.
pub fn email_in_use(to: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: "Your address was offered to another berth account".into(),
        body: "Someone asked to use this address for their berth account, but it already \
               belongs to a berth account (maybe yours). Nothing was changed.\n\n\
               If it was not you, ignore this mail.\n"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_steps_give_the_link_and_the_api_request() {
        let links = Links(Some("https://berth.example"));
        let mail =
            confirm_registration(&links, "a@b.c", "alice", "tok", Duration::from_secs(86400));
        assert!(mail.body.contains("within 24 hours"), "{}", mail.body);
        assert!(mail
            .body
            .contains("https://berth.example/confirm-registration#token=tok\n"));
        assert!(mail.body.contains(
            "POST https://berth.example/api/v1/auth/register/confirm\n{\"token\": \"tok\", \"password\""
        ));
    }

    #[test]
    fn without_a_public_url_only_the_api_request_is_given() {
        let mail = password_reset(
            &Links(None),
            "a@b.c",
            "alice",
            "tok",
            Duration::from_secs(1800),
        );
        assert!(!mail.body.contains("#token="), "{}", mail.body);
        assert!(mail.body.contains(
            "send this to the API within 30 minutes:\nPOST /api/v1/auth/password-reset/confirm\n"
        ));
        assert!(mail.body.contains("{\"token\": \"tok\", \"new_password\""));
    }
}

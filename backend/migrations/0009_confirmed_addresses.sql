-- A sign-up and an email change wait until the address is confirmed from
-- its inbox. The API answers the same whether or not the email or the
-- username is taken; the mail to the address says which.

CREATE TABLE pending_registrations (
    token_hash    bytea PRIMARY KEY,
    username      text NOT NULL,
    email         text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

CREATE TABLE email_changes (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX email_changes_user ON email_changes (user_id, created_at DESC);

-- Mail sent to an address that asked for none of it (anyone can type any
-- address into a sign-up form), counted so that nobody can flood an inbox.
CREATE TABLE unsolicited_mails (
    address text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unsolicited_mails_address ON unsolicited_mails (address, sent_at DESC);

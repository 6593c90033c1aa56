// The local stack's SMTP sink (aiosmtpd) writes each message as a file in
// `<Maildir>/new/`, with the envelope's recipients in an `X-RcptTo:` header.
// The same reading as backend/tests/common/mailbox.rs, for the journeys.

import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";

export interface Mail {
  headers: Map<string, string>;
  /** The body with its transfer encoding undone. */
  body: string;
}

/** Splits a message into headers (names lower-cased, folded lines joined) and body. */
export function parseMail(raw: string): Mail {
  const text = raw.replace(/\r\n/g, "\n");
  const end = text.indexOf("\n\n");
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? "" : text.slice(end + 2);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\n[ \t]+/g, " ").split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const encoding = (headers.get("content-transfer-encoding") ?? "").toLowerCase();
  return { headers, body: decodeBody(body, encoding) };
}

function decodeBody(body: string, encoding: string): string {
  if (encoding === "quoted-printable") return decodeQuotedPrintable(body);
  if (encoding === "base64") return Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8");
  return body;
}

/** RFC 2045 quoted-printable: `=\n` is a soft line break, `=XX` a byte. */
export function decodeQuotedPrintable(text: string): string {
  const joined = text.replace(/=\n/g, "");
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const hex = joined.slice(i + 1, i + 3);
    if (joined[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(joined[i], "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** The messages to `to` in the Maildir so far, oldest first. */
export async function messagesTo(mailDir: string, to: string): Promise<Mail[]> {
  const dir = join(mailDir, "new");
  const found: { at: number; mail: Mail }[] = [];
  for (const name of await readdir(dir)) {
    const file = join(dir, name);
    const mail = parseMail(await readFile(file, "utf8"));
    const recipients = (mail.headers.get("x-rcptto") ?? "").toLowerCase().split(",");
    if (recipients.some((r) => r.trim() === to.toLowerCase())) {
      found.push({ at: (await stat(file)).mtimeMs, mail });
    }
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.mail);
}

/** Waits (up to `withinMs`) for the first message to `to`. */
export async function waitForMail(mailDir: string, to: string, withinMs = 20_000): Promise<Mail> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const [first] = await messagesTo(mailDir, to);
    if (first) return first;
    if (Date.now() > deadline) throw new Error(`no mail to ${to} reached ${mailDir}/new within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The registration link in a confirmation mail: `{public URL}/confirm-registration#token=...`. */
export function confirmationLink(mail: Mail): string {
  const link = mail.body.match(/https?:\/\/\S+\/confirm-registration#token=[A-Za-z0-9_-]+/);
  if (!link) throw new Error(`no confirmation link in the mail:\n${mail.body}`);
  return link[0];
}

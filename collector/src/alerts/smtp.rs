//! One alert by email: plain SMTP (RFC 5321) to the configured relay, under one deadline for
//! the whole exchange. No TLS and no authentication: the relay is the operator's own (a local
//! MTA that does both onwards), as webhooks speak plain HTTP to a local relay. Replies are
//! read a line at a time, at most [`MAX_LINE`] bytes each and [`MAX_LINES`] per reply, so a
//! hostile relay costs the deadline and nothing more.

use super::Alert;
use crate::config::Email;
use sixmap_shared::UnixMicros;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const MAX_LINE: usize = 1024;
const MAX_LINES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connecting to {relay}: {source}")]
    Connect {
        relay: String,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the relay's answer is not an SMTP reply")]
    BadReply,
    #[error("the relay answered {code} to {step}: {text}")]
    Refused {
        step: &'static str,
        code: u16,
        text: String,
    },
}

/// A reply: its code, and its lines' text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

/// Parses one reply line (`250-8BITMIME`, `250 OK`): code, whether more lines follow, text.
pub fn reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (more, text) = match line.as_bytes().get(3) {
        None => (false, ""),
        Some(b' ') => (false, &line[4..]),
        Some(b'-') => (true, &line[4..]),
        Some(_) => return None,
    };
    Some((code.parse().ok()?, more, text))
}

async fn read_reply<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Reply, SmtpError> {
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        // Bounded: `take` stops a line that never ends at MAX_LINE bytes.
        let n = (&mut *reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 || !line.ends_with(b"\n") || lines.len() >= MAX_LINES {
            return Err(SmtpError::BadReply);
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let (code, more, rest) = reply_line(&text).ok_or(SmtpError::BadReply)?;
        lines.push(rest.to_owned());
        if !more {
            return Ok(Reply { code, lines });
        }
    }
}

/// `Fri, 04 Dec 2026 19:51:00 +0000` (RFC 5322 `Date`).
pub fn rfc5322_date(at: UnixMicros) -> String {
    let seconds = at.0.div_euclid(1_000_000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = crate::export::row::civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m as usize).saturating_sub(1).min(11)];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} +0000",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Header text without line breaks or controls (a summary names probes and hosts), at most
/// 200 characters.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// `text` as a header value: as is when ASCII, else RFC 2047 encoded words (UTF-8, base64),
/// each at most 75 characters and on its own folded line, so any mail reader shows the
/// summary's host and country names as written.
fn header_value(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    // 45 bytes of UTF-8 make 60 base64 characters: 72 with `=?UTF-8?B?` and `?=`.
    const CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > CHUNK {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                crate::export::dns_wire::base64(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\n ")
}

/// The longest line SMTP carries is 998 octets (RFC 5322 2.1.1); longer body lines (a long
/// evidence value) are cut at a character boundary and continued on the next line.
const MAX_BODY_LINE: usize = 998;

fn wrap_line(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = line;
    while rest.len() > MAX_BODY_LINE - 1 {
        let mut cut = MAX_BODY_LINE - 1;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    parts.push(rest);
    parts
}

/// Who gets `alert`: the destination's `to`, and for a `probe_offline` alert the contact of
/// the probe's owner (its evidence's `owner`) when `probe_owners` names one. Empty: nobody to
/// tell (the alert counts as delivered to this destination).
pub fn recipients(mail: &Email, alert: &Alert) -> Vec<String> {
    let mut to = mail.to.clone();
    if alert.kind == "probe_offline"
        && let Some(contact) = alert.evidence["owner"]
            .as_str()
            .and_then(|owner| mail.probe_owners.get(owner))
        && !to.contains(contact)
    {
        to.push(contact.clone());
    }
    to
}

/// The message (headers, blank line, body) with CRLF line ends and dot-stuffed, ready for
/// `DATA` (without the final `.`).
pub fn message(mail: &Email, alert: &Alert, now: UnixMicros) -> String {
    let evidence = serde_json::to_string_pretty(&alert.evidence).unwrap_or_default();
    let links = alert
        .links
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let body = format!(
        "{}\n\nRule {} ({}), subject {}.\nAlert id {} (also in X-Sixmap-Alert-Id).\n\n\
         Evidence:\n{evidence}\n\nLinks (API paths on the collector):\n{links}\n",
        header_text(&alert.summary),
        alert.rule,
        alert.kind,
        alert.subject,
        alert.id
    );
    let head = format!(
        "From: <{}>\nTo: {}\nSubject: {}\nDate: {}\nMessage-ID: <{}@sixmap>\n\
         X-Sixmap-Alert-Id: {}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n",
        mail.from,
        recipients(mail, alert)
            .iter()
            .map(|t| format!("<{t}>"))
            .collect::<Vec<_>>()
            .join(", "),
        header_value(&format!("[sixmap] {}", header_text(&alert.summary))),
        rfc5322_date(now),
        alert.id,
        alert.id,
    );
    format!("{head}\n{body}")
        .lines()
        .flat_map(wrap_line)
        .map(|l| {
            // Dot-stuffing (RFC 5321 4.5.2): a line starting with a dot gets another.
            if l.starts_with('.') {
                format!(".{l}\r\n")
            } else {
                format!("{l}\r\n")
            }
        })
        .collect()
}

/// Sends `alert` to `mail`'s recipients through its relay; `Ok` once the relay accepted the
/// message (250 after `DATA`).
pub async fn send(
    mail: &Email,
    alert: &Alert,
    now: UnixMicros,
    timeout: Duration,
) -> Result<(), SmtpError> {
    let recipients = recipients(mail, alert);
    if recipients.is_empty() {
        // An alert of a probe whose owner left no contact, on a destination for owners only.
        return Ok(());
    }
    let attempt = async {
        let stream =
            TcpStream::connect(&mail.relay)
                .await
                .map_err(|source| SmtpError::Connect {
                    relay: mail.relay.clone(),
                    source,
                })?;
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let expect = |step: &'static str, reply: Reply, wanted: u16| {
            if reply.code == wanted {
                Ok(reply)
            } else {
                Err(SmtpError::Refused {
                    step,
                    code: reply.code,
                    text: header_text(&reply.lines.join(" ")),
                })
            }
        };
        expect("the greeting", read_reply(&mut reader).await?, 220)?;
        write.write_all(b"EHLO sixmap-collector\r\n").await?;
        let ehlo = expect("EHLO", read_reply(&mut reader).await?, 250)?;
        let eight_bit = ehlo
            .lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case("8BITMIME"));
        let body = if eight_bit { " BODY=8BITMIME" } else { "" };
        write
            .write_all(format!("MAIL FROM:<{}>{body}\r\n", mail.from).as_bytes())
            .await?;
        expect("MAIL FROM", read_reply(&mut reader).await?, 250)?;
        // A recipient the relay refuses for good (5xx) is skipped, so one bad address does not
        // hold every later alert; a transient refusal (4xx) retries the whole send.
        let mut accepted = 0;
        let mut refused = None;
        for to in &recipients {
            write
                .write_all(format!("RCPT TO:<{to}>\r\n").as_bytes())
                .await?;
            let reply = read_reply(&mut reader).await?;
            match reply.code {
                250 | 251 => accepted += 1,
                500..=599 => {
                    tracing::warn!(recipient = %to, code = reply.code, "alert email: the relay refused a recipient");
                    refused = Some(reply);
                }
                _ => {
                    expect("RCPT TO", reply, 250)?;
                }
            }
        }
        if accepted == 0
            && let Some(reply) = refused
        {
            expect("RCPT TO", reply, 250)?;
        }
        write.write_all(b"DATA\r\n").await?;
        expect("DATA", read_reply(&mut reader).await?, 354)?;
        write
            .write_all(message(mail, alert, now).as_bytes())
            .await?;
        write.write_all(b".\r\n").await?;
        expect("the message", read_reply(&mut reader).await?, 250)?;
        // Accepted: QUIT is a courtesy, its answer does not matter.
        let _ = write.write_all(b"QUIT\r\n").await;
        Ok(())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| SmtpError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(
            reply_line("250-8BITMIME\r\n"),
            Some((250, true, "8BITMIME"))
        );
        assert_eq!(reply_line("250 OK\r\n"), Some((250, false, "OK")));
        assert_eq!(reply_line("354"), Some((354, false, "")));
        assert_eq!(reply_line("25x OK"), None);
        assert_eq!(reply_line("250_OK"), None);
        assert_eq!(reply_line(""), None);
    }

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(
            rfc5322_date(UnixMicros(0)),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(
            rfc5322_date(UnixMicros(1_796_413_860_000_000)),
            "Fri, 04 Dec 2026 19:51:00 +0000"
        );
    }

    /// A probe's owner hears of their probe's outage, and of nothing else.
    #[test]
    fn probe_owners_get_their_probes_offline_alerts_only() {
        let mail = Email {
            name: "mail".into(),
            relay: "[::1]:25".into(),
            from: "sixmap@example.org".into(),
            to: vec!["noc@example.org".into()],
            probe_owners: [("alice".to_owned(), "alice@home.example".to_owned())].into(),
        };
        let alert = |kind: &str, owner: &str| Alert {
            id: "abc".into(),
            rule: "r".into(),
            kind: kind.into(),
            subject: "probe:x".into(),
            created_at: UnixMicros(1),
            summary: "s".into(),
            evidence: serde_json::json!({"owner": owner}),
            links: Vec::new(),
        };
        assert_eq!(
            recipients(&mail, &alert("probe_offline", "alice")),
            ["noc@example.org", "alice@home.example"]
        );
        assert_eq!(
            recipients(&mail, &alert("probe_offline", "bob")),
            ["noc@example.org"]
        );
        assert_eq!(
            recipients(&mail, &alert("share_drop", "alice")),
            ["noc@example.org"]
        );
        let owners_only = Email {
            to: Vec::new(),
            ..mail
        };
        assert!(recipients(&owners_only, &alert("share_drop", "alice")).is_empty());
        assert!(
            message(
                &owners_only,
                &alert("probe_offline", "alice"),
                UnixMicros(0)
            )
            .contains("To: <alice@home.example>\r\n")
        );
    }

    #[test]
    fn the_message_is_dot_stuffed_and_its_headers_have_no_line_breaks() {
        let mail = Email {
            name: "mail".into(),
            relay: "[::1]:25".into(),
            from: "sixmap@example.org".into(),
            to: vec!["noc@example.org".into(), "ops@example.org".into()],
            probe_owners: Default::default(),
        };
        let alert = Alert {
            id: "abc".into(),
            rule: "r".into(),
            kind: "probe_offline".into(),
            subject: "probe:x".into(),
            created_at: UnixMicros(1),
            summary: "probe x\r\nBcc: evil@example.org".into(),
            evidence: serde_json::json!({"note": "x"}),
            links: vec!["/api/v1/probes".into()],
        };
        let text = message(&mail, &alert, UnixMicros(0));
        assert!(text.lines().all(|l| !l.starts_with("Bcc")), "{text}");
        assert!(text.contains("To: <noc@example.org>, <ops@example.org>\r\n"));
        assert!(text.contains("X-Sixmap-Alert-Id: abc\r\n"));
        assert!(text.split("\r\n").all(|l| !l.contains('\n')));
        // The summary opens the body: a body line that starts with a dot.
        let mut with_dot = alert.clone();
        with_dot.summary = ".starts with a dot".into();
        let text = message(&mail, &with_dot, UnixMicros(0));
        assert!(text.contains("\r\n..starts with a dot\r\n"), "{text}");
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let values: Vec<u32> = text
            .bytes()
            .filter(|b| *b != b'=')
            .map(|b| {
                ALPHABET
                    .bytes()
                    .position(|a| a == b)
                    .expect("base64 alphabet") as u32
            })
            .collect();
        let mut out = Vec::new();
        for chunk in values.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0, |n, (i, v)| n | v << (18 - 6 * i));
            for i in 0..chunk.len() - 1 {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }

    #[test]
    fn a_summary_in_any_script_is_encoded_and_long_lines_are_cut() {
        let mail = Email {
            name: "mail".into(),
            relay: "[::1]:25".into(),
            from: "sixmap@example.org".into(),
            to: vec!["noc@example.org".into()],
            probe_owners: Default::default(),
        };
        let summary = "IPv6 perdu vers café.example depuis l'opérateur مصر للاتصالات".to_owned();
        let alert = Alert {
            id: "abc".into(),
            rule: "r".into(),
            kind: "target_lost_v6".into(),
            subject: "target:café.example".into(),
            created_at: UnixMicros(1),
            summary: summary.clone(),
            evidence: serde_json::json!({"long": "x".repeat(3000)}),
            links: vec![],
        };
        let text = message(&mail, &alert, UnixMicros(0));
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        assert!(head.is_ascii(), "{head}");
        let lines: Vec<&str> = head.split("\r\n").collect();
        let start = lines
            .iter()
            .position(|l| l.starts_with("Subject: "))
            .expect("a Subject");
        let mut words = vec![lines[start].trim_start_matches("Subject: ")];
        words.extend(
            lines[start + 1..]
                .iter()
                .take_while(|l| l.starts_with(' '))
                .map(|l| &l[1..]),
        );
        assert!(words.len() > 1, "{head}");
        let mut decoded = Vec::new();
        for word in words {
            assert!(word.len() <= 75, "{word}");
            let inner = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .expect("an encoded word");
            decoded.extend(base64_decode(inner));
        }
        assert_eq!(
            String::from_utf8(decoded).ok(),
            Some(format!("[sixmap] {summary}"))
        );
        assert!(
            text.split("\r\n").all(|l| l.len() <= 998),
            "a line over 998 octets"
        );
        assert!(text.contains(&"x".repeat(900)));
    }
}

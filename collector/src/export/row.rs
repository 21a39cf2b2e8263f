//! The flat row shared by the CSV and Parquet exports: columns common to every kind, a
//! kind-specific headline, and the full outcome as JSON. One definition, so both formats
//! always carry the same columns in the same order (documented in `docs/export.md`).

use crate::store::StoredResult;
use sixmap_shared::measurement::{ConnectOutcome, Family, Outcome};
use sixmap_shared::prefixes::Enrichment;

/// A column's type; every column but the always-present ones is nullable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    Float,
    Bool,
    /// Microseconds since 1970 UTC: RFC 3339 in CSV, TIMESTAMP(MICROS, UTC) in Parquet.
    Timestamp,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    /// Present in every row.
    pub required: bool,
}

const fn col(name: &'static str, kind: ColumnType, required: bool) -> Column {
    Column {
        name,
        kind,
        required,
    }
}

use ColumnType::{Bool, Float, Int, Text, Timestamp};

pub const COLUMNS: &[Column] = &[
    col("key", Text, true),
    col("probe_id", Text, true),
    col("task_id", Int, true),
    col("started_at", Timestamp, true),
    col("started_at_us", Int, true),
    col("duration_us", Int, true),
    col("family_requested", Text, true),
    col("family_used", Text, false),
    col("source", Text, false),
    col("destination", Text, false),
    col("probe_asn", Int, false),
    col("probe_country", Text, false),
    col("target_asn", Int, false),
    col("target_country", Text, false),
    col("type", Text, true),
    col("reached_destination", Bool, true),
    col("packets_sent", Int, false),
    col("packets_received", Int, false),
    col("loss", Float, false),
    col("rtt_min_ms", Float, false),
    col("rtt_avg_ms", Float, false),
    col("rtt_max_ms", Float, false),
    col("hop_count", Int, false),
    col("dns_rcode", Int, false),
    col("dns_answers", Int, false),
    col("time_ms", Float, false),
    col("http_status", Int, false),
    col("http_connect_ms", Float, false),
    col("http_first_byte_ms", Float, false),
    col("error_class", Text, false),
    col("error_message", Text, false),
    col("outcome", Text, true),
];

/// One cell; `Null` where the column does not apply to the result.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Timestamp(i64),
}

fn text(value: impl ToString) -> Cell {
    Cell::Text(value.to_string())
}

fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> Cell) -> Cell {
    value.map_or(Cell::Null, f)
}

fn int(value: impl TryInto<i64>) -> Cell {
    value.try_into().map_or(Cell::Null, Cell::Int)
}

fn ms(ns: u64) -> Cell {
    Cell::Float(ns as f64 / 1e6)
}

fn family(f: Family) -> Cell {
    text(match f {
        Family::V6 => "v6",
        Family::V4 => "v4",
    })
}

/// The kind's headline figures, kept apart so `cells` stays readable.
#[derive(Debug, Default)]
struct Headline {
    packets_sent: Option<i64>,
    packets_received: Option<i64>,
    loss: Option<f64>,
    rtt: Option<(f64, f64, f64)>,
    hop_count: Option<i64>,
    dns_rcode: Option<i64>,
    dns_answers: Option<i64>,
    time_ns: Option<u64>,
    http_status: Option<i64>,
    http_connect_ns: Option<u64>,
    http_first_byte_ns: Option<u64>,
    error_class: Option<String>,
    error_message: Option<String>,
}

fn headline(outcome: &Outcome) -> Headline {
    let mut h = Headline::default();
    match outcome {
        Outcome::Failed(e) => {
            h.error_class = serde_json::to_value(e.class)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            h.error_message = Some(e.message.clone());
        }
        Outcome::Ping(p) => {
            h.packets_sent = Some(i64::from(p.sent));
            h.packets_received = Some(i64::from(p.received));
            h.loss = Some(p.loss());
            let rtts: Vec<f64> = p
                .replies
                .iter()
                .filter(|r| !r.duplicate)
                .map(|r| r.rtt_ns as f64 / 1e6)
                .collect();
            if !rtts.is_empty() {
                let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
                let max = rtts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let avg = rtts.iter().sum::<f64>() / rtts.len() as f64;
                h.rtt = Some((min, avg, max));
            }
        }
        Outcome::Traceroute(t) => {
            h.packets_sent = Some(i64::from(t.packets_sent));
            h.hop_count = Some(traceroute_hop_count(t));
        }
        Outcome::Dns(d) => {
            h.time_ns = d.rtt_ns;
            if let Some(r) = &d.response {
                h.dns_rcode = Some(i64::from(r.rcode));
                h.dns_answers = i64::try_from(r.answers.len()).ok();
            }
            h.error_message = d.failure.clone();
        }
        Outcome::Tcp(t) => {
            h.time_ns = t.connect_ns;
            h.error_message = connect_failure(t.outcome);
        }
        Outcome::Tls(t) => {
            h.time_ns = t.handshake_ns;
            h.error_message = t.failure.clone();
        }
        Outcome::Http(r) => {
            h.time_ns = Some(r.total_ns);
            h.http_status = r.status.map(i64::from);
            h.http_connect_ns = r.connect_ns;
            h.http_first_byte_ns = r.first_byte_ns;
            h.error_message = r.failure.clone();
        }
        Outcome::Quic(q) => {
            h.time_ns = q.handshake_ns;
            h.error_message = q.failure_detail.clone();
        }
        Outcome::Pmtu(p) => h.packets_sent = Some(i64::from(p.packets_sent)),
        Outcome::ExtHeaders(e) => h.packets_sent = Some(i64::from(e.packets_sent)),
        Outcome::DualStack(_) => {}
        // The web page over IPv6 is the headline; the rest is in the result's JSON.
        Outcome::Readiness(r) => {
            h.http_status = r.web.https_v6_status.map(i64::from);
            h.error_message = r.web.v6_error.clone();
        }
    }
    h
}

/// The hop limit of the farthest hop that answered (0 when none did): the path length as a
/// traceroute reader would count it.
pub fn traceroute_hop_count(t: &sixmap_shared::measurement::TracerouteResult) -> i64 {
    t.hops
        .iter()
        .rev()
        .find(|hop| hop.replies.iter().any(Option::is_some))
        .map_or(0, |hop| i64::from(hop.hop_limit))
}

fn connect_failure(outcome: ConnectOutcome) -> Option<String> {
    match outcome {
        ConnectOutcome::Connected => None,
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
    }
}

/// The row of `stored`, one cell per entry of [`COLUMNS`].
pub fn cells(stored: &StoredResult) -> Result<Vec<Cell>, serde_json::Error> {
    let r = &stored.result;
    let h = headline(&r.outcome);
    let asn = |e: &Option<Enrichment>| opt(e.as_ref().and_then(|e| e.asn), int);
    let country = |e: &Option<Enrichment>| opt(e.as_ref().and_then(|e| e.country), text);
    let kind = r.outcome.kind().map_or("failed", |k| k.name());
    let (rtt_min, rtt_avg, rtt_max) = match h.rtt {
        Some((min, avg, max)) => (Cell::Float(min), Cell::Float(avg), Cell::Float(max)),
        None => (Cell::Null, Cell::Null, Cell::Null),
    };
    Ok(vec![
        text(&r.key),
        text(&r.key.probe_id),
        int(r.task_id.get()),
        Cell::Timestamp(r.started_at.0),
        Cell::Int(r.started_at.0),
        int(r.duration_us),
        family(r.family_requested),
        opt(r.family_used, family),
        opt(r.source, text),
        opt(r.destination, text),
        asn(&stored.probe_origin),
        country(&stored.probe_origin),
        asn(&stored.target_origin),
        country(&stored.target_origin),
        text(kind),
        Cell::Bool(r.outcome.reached_destination()),
        opt(h.packets_sent, Cell::Int),
        opt(h.packets_received, Cell::Int),
        opt(h.loss, Cell::Float),
        rtt_min,
        rtt_avg,
        rtt_max,
        opt(h.hop_count, Cell::Int),
        opt(h.dns_rcode, Cell::Int),
        opt(h.dns_answers, Cell::Int),
        opt(h.time_ns, ms),
        opt(h.http_status, Cell::Int),
        opt(h.http_connect_ns, ms),
        opt(h.http_first_byte_ns, ms),
        opt(h.error_class, Cell::Text),
        opt(h.error_message, Cell::Text),
        Cell::Text(serde_json::to_string(&r.outcome)?),
    ])
}

/// RFC 3339 UTC with microseconds (`2026-03-01T12:00:00.000123Z`) of µs since 1970.
pub fn rfc3339(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Proleptic Gregorian date of days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_covers_both_sides_of_the_epoch() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_772_366_400_000_123),
            "2026-03-01T12:00:00.000123Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(civil_from_days(59), (1970, 3, 1));
    }

    #[test]
    fn every_row_has_one_cell_per_column() {
        let stored = crate::testing::ping_v6(
            "0123456789abcdef".parse().unwrap(),
            1,
            sixmap_shared::UnixMicros(5),
            Some(std::time::Duration::from_millis(12)),
            Enrichment::default(),
        );
        let row = cells(&stored).unwrap();
        assert_eq!(row.len(), COLUMNS.len());
        for (cell, column) in row.iter().zip(COLUMNS) {
            if column.required {
                assert_ne!(*cell, Cell::Null, "{}", column.name);
            }
        }
        let at = |name: &str| &row[COLUMNS.iter().position(|c| c.name == name).unwrap()];
        assert_eq!(*at("rtt_min_ms"), Cell::Float(12.0));
        assert_eq!(*at("type"), Cell::Text("ping".into()));
        assert_eq!(*at("loss"), Cell::Float(0.0));
    }
}

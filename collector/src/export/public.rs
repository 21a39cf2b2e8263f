//! What public outputs may say about a probe's own address: its /48 (IPv6) or /24 (IPv4),
//! never more. Applied to the daily open-data dumps ([`Masking`]), which publish raw results
//! that carry the probe's source address (`source`, each dual-stack leg's `source`), and
//! addresses inside the probe's own prefix that other fields can reveal (the home router as
//! a traceroute's first hop, an ICMP error from it). A /48 is what an RIR assigns a site: it
//! names the network, not the household or the host inside it.
//!
//! The walk is over the result's JSON form, every field at any depth, so a field added to a
//! result later is covered without this module knowing it; the masked JSON is read back into
//! a [`StoredResult`] for the typed formats (CSV, Parquet, Atlas).

use super::{ExportError, ExportWriter};
use crate::store::StoredResult;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bits of a probe's IPv6 address a public output keeps.
pub const V6_PREFIX: u8 = 48;
/// Bits of a probe's IPv4 address a public output keeps.
pub const V4_PREFIX: u8 = 24;

/// `address` cut to the published prefix of its family (IPv4-mapped IPv6 as IPv4).
pub fn mask(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V6(mask_v4(v4).to_ipv6_mapped()),
            None => IpAddr::V6(Ipv6Addr::from_bits(
                v6.to_bits() & (u128::MAX << (128 - u32::from(V6_PREFIX))),
            )),
        },
        IpAddr::V4(v4) => IpAddr::V4(mask_v4(v4)),
    }
}

fn mask_v4(v4: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from_bits(v4.to_bits() & (u32::MAX << (32 - u32::from(V4_PREFIX))))
}

/// The JSON keys that hold the probe's own address.
fn is_source_key(key: &str) -> bool {
    key == "source"
}

fn collect_sources(value: &Value, prefixes: &mut Vec<IpAddr>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if is_source_key(key)
                    && let Some(address) = v.as_str().and_then(|s| s.parse::<IpAddr>().ok())
                {
                    prefixes.push(mask(address));
                }
                collect_sources(v, prefixes);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_sources(v, prefixes)),
        _ => {}
    }
}

/// Masks every string that is an address in one of `prefixes` (the probe's own), and every
/// `source` address whatever it is.
fn mask_in(value: &mut Value, prefixes: &[IpAddr], key: Option<&str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                mask_in(v, prefixes, Some(k));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask_in(v, prefixes, None)),
        Value::String(text) => {
            if let Ok(address) = text.parse::<IpAddr>() {
                if let Some(masked) = household(address) {
                    *text = masked.to_string();
                } else {
                    let masked = mask(address);
                    if key.is_some_and(is_source_key) || prefixes.contains(&masked) {
                        *text = masked.to_string();
                    }
                }
            } else if let Some(masked) = mask_text(text, prefixes) {
                *text = masked;
            }
        }
        _ => {}
    }
}

/// What a household-local address is cut to, whatever field holds it: a unique local address
/// (fc00::/7: its 40-bit global id is a stable per-site random number, the home router's
/// address behind a system resolver) to `fd00::`/`fc00::`, a link-local one to `fe80::`.
/// `None` for every other address.
fn household(address: IpAddr) -> Option<IpAddr> {
    let IpAddr::V6(v6) = address else {
        return None;
    };
    let first = v6.segments()[0];
    if first & 0xfe00 == 0xfc00 {
        Some(IpAddr::V6(Ipv6Addr::new(
            first & 0xff00,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        )))
    } else if first & 0xffc0 == 0xfe80 {
        Some(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)))
    } else {
        None
    }
}

/// `text` (free text: an error message) with the addresses it names cut as a field holding
/// them would be; `None` when it names none that needs it. Words are split at white space
/// and stripped of quotes, brackets and punctuation around them, and of a `%zone`.
fn mask_text(text: &str, prefixes: &[IpAddr]) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        let core = word.trim_matches(|c: char| "\"'()[]{}<>,;.".contains(c));
        // `[address]:port` and `address%zone`: the address alone.
        let address_text = core.split(['%', ']']).next().unwrap_or(core);
        let replacement = address_text.parse::<IpAddr>().ok().and_then(|address| {
            household(address).or_else(|| {
                let masked = mask(address);
                prefixes.contains(&masked).then_some(masked)
            })
        });
        match (replacement, word.find(address_text)) {
            (Some(masked), Some(at)) if !address_text.is_empty() => {
                out.push_str(&word[..at]);
                out.push_str(&masked.to_string());
                out.push_str(&word[at + address_text.len()..]);
                changed = true;
            }
            _ => out.push_str(word),
        }
        rest = &rest[end..];
    }
    changed.then_some(out)
}

/// `stored` as a public output may show it: the probe's addresses cut to its /48 (/24).
pub fn public_result(stored: &StoredResult) -> Result<StoredResult, serde_json::Error> {
    let mut value = serde_json::to_value(stored)?;
    let mut prefixes = Vec::new();
    collect_sources(&value, &mut prefixes);
    mask_in(&mut value, &prefixes, None);
    serde_json::from_value(value)
}

/// An export writer that writes every result through [`public_result`].
pub struct Masking(pub Box<dyn ExportWriter>);

impl std::fmt::Debug for Masking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Masking(..)")
    }
}

impl ExportWriter for Masking {
    fn write(&mut self, result: &StoredResult) -> Result<bool, ExportError> {
        self.0.write(&public_result(result)?)
    }

    fn finish(self: Box<Self>) -> Result<(), ExportError> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::samples;
    use sixmap_shared::UnixMicros;

    /// A home router's unique local or link-local address identifies the household wherever
    /// it appears (a system resolver's `destination`, an error message); an address of the
    /// probe's own /48 inside a message is cut as in a field.
    #[test]
    fn household_addresses_are_cut_in_any_field_and_in_messages() {
        let own: IpAddr = "2001:db8:1234::".parse().unwrap();
        let mut value = serde_json::json!({
            "destination": "fd3a:1b2c:9d4e::1",
            "hop": "fe80::1:2",
            "target": "2001:db8:99::1",
            "failure": "the first nameserver \"fe80::aa:bb%eth0\" failed; connect to [2001:db8:1234:5::7]:53, then fd12:3456:789a::53.",
        });
        mask_in(&mut value, &[own], None);
        assert_eq!(value["destination"], "fd00::");
        assert_eq!(value["hop"], "fe80::");
        assert_eq!(
            value["target"], "2001:db8:99::1",
            "another network's address stays"
        );
        assert_eq!(
            value["failure"],
            "the first nameserver \"fe80::%eth0\" failed; connect to [2001:db8:1234::]:53, then fd00::."
        );
        assert_eq!(mask_text("no address here: 42 ms", &[own]), None);
    }

    #[test]
    fn prefixes_are_cut_per_family() {
        let cut = |s: &str| mask(s.parse().unwrap()).to_string();
        assert_eq!(cut("2001:db8:1234:5678::42"), "2001:db8:1234::");
        assert_eq!(cut("2001:db8:1234::"), "2001:db8:1234::");
        assert_eq!(cut("192.0.2.77"), "192.0.2.0");
        assert_eq!(cut("::ffff:192.0.2.77"), "::ffff:192.0.2.0");
    }

    /// Every sample kind: the probe's address appears only as its /48, a hop inside the
    /// probe's /48 (its home router) too, other addresses stay whole, and nothing else moves.
    #[test]
    fn results_keep_only_the_probes_48() {
        for i in 0..samples::VARIANTS {
            let stored = samples::sample(i, 3, UnixMicros(1_700_000_000_000_000), 1_000_000);
            let source = stored.result.source.unwrap();
            // The home router inside the probe's prefix, as a traceroute's first hop would
            // show it: put it wherever the sample has the target's address.
            let router = "2001:db8:5:99::1";
            let text = serde_json::to_string(&stored)
                .unwrap()
                .replace("\"2001:db8:a:1::1\"", &format!("\"{router}\""));
            let stored: StoredResult = serde_json::from_str(&text).unwrap();
            let public = public_result(&stored).unwrap();
            let out = serde_json::to_string(&public).unwrap();
            assert!(!out.contains(&source.to_string()), "{out}");
            assert!(!out.contains(router), "{out}");
            assert_eq!(public.result.source, Some(mask(source)));
            assert_eq!(public.result.destination, stored.result.destination);
            let mut back = public.clone();
            back.result.source = stored.result.source;
            if !text.contains(router) {
                assert_eq!(back, stored, "only the source changed in sample {i}");
            }
        }
    }
}

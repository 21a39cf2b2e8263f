//! The paired dual-stack measurement: one name, measured over IPv6 and IPv4 at the same moment.

use super::{Family, FaultPath, Outcome, SpecError, field};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// The measurement run over each family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DualInner {
    Ping,
    Tcp,
    Http,
}

impl DualInner {
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        match text {
            "ping" => Ok(Self::Ping),
            "tcp" => Ok(Self::Tcp),
            "http" => Ok(Self::Http),
            other => Err(field(
                "dual_stack.inner",
                format!("{other:?} is not one of ping, tcp, http"),
            )),
        }
    }
}

/// The target of the spec must be a host name with both A and AAAA records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DualStackSpec {
    inner: DualInner,
    port: u16,
}

impl DualStackSpec {
    /// `port` 0 selects 80 for tcp and http; it must be 0 for ping.
    pub fn new(inner: DualInner, port: u32) -> Result<Self, SpecError> {
        let port = match (inner, port) {
            (DualInner::Ping, 0) => 0,
            (DualInner::Ping, _) => {
                return Err(field("dual_stack.port", "ping takes no port"));
            }
            (_, 0) => 80,
            (_, n) => u16::try_from(n)
                .map_err(|_| field("dual_stack.port", "must be 0 (default) or 1..=65535"))?,
        };
        Ok(Self { inner, port })
    }
    pub fn inner(&self) -> DualInner {
        self.inner
    }
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// One family's half of a dual-stack measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DualLeg {
    pub source: Option<IpAddr>,
    pub destination: Option<IpAddr>,
    pub duration_us: u64,
    /// The inner measurement's outcome (never itself a dual-stack outcome).
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DualStackResult {
    pub v6: Box<DualLeg>,
    pub v4: Box<DualLeg>,
    /// What an RFC 8305 client would have used, or `None` when neither family worked.
    pub happy_eyeballs_choice: Option<Family>,
    /// Path length in hops (routers + 1), estimated from the reply hop limit of ping legs.
    pub v6_hops: Option<u8>,
    pub v4_hops: Option<u8>,
    /// The v6 leg's destination was synthesised by DNS64 (RFC 6147): the NAT64 prefix (RFC
    /// 6052) it lies under. The name then has no IPv6 address of its own and the IPv6 path
    /// ends in a translator; the probe's network is IPv6-only with NAT64 as its user sees it.
    #[serde(default)]
    pub v6_nat64_prefix: Option<crate::nat64::Nat64Prefix>,
    /// The v4 leg left from a CLAT address (192.0.0.0/29, RFC 7335): the host's IPv4 is
    /// 464XLAT (RFC 6877), translated to IPv6 on the host and back in the network.
    #[serde(default)]
    pub v4_via_clat: bool,
    /// IPv6 failed where IPv4 worked: the IPv6 path towards the v6 leg's destination, traced
    /// right after, for fault attribution. `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6_fault_path: Option<FaultPath>,
}

impl DualStackResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        for (name, leg) in [("dual_stack.v6", &self.v6), ("dual_stack.v4", &self.v4)] {
            // Only the kinds a dual-stack spec can name: this also bounds a result's size.
            if !matches!(
                leg.outcome,
                Outcome::Failed(_) | Outcome::Ping(_) | Outcome::Tcp(_) | Outcome::Http(_)
            ) {
                return Err(field(name, "a leg must be a ping, tcp or http outcome"));
            }
            leg.outcome.validate().map_err(|e| match e {
                SpecError::Field { reason, .. } => field(name, reason),
                other => other,
            })?;
        }
        // The translation flags must agree with the legs they describe: the v6 leg's
        // destination lies under the prefix, a CLAT leg left from 192.0.0.0/29.
        if let Some(prefix) = self.v6_nat64_prefix {
            let under = matches!(self.v6.destination, Some(IpAddr::V6(d)) if prefix.contains(d));
            if !under {
                return Err(field(
                    "dual_stack.v6_nat64_prefix",
                    format!("the v6 leg's destination is not under {prefix}"),
                ));
            }
        }
        if self.v4_via_clat
            && !matches!(self.v4.source, Some(IpAddr::V4(s)) if s.octets()[..3] == [192, 0, 0] && s.octets()[3] < 8)
        {
            return Err(field(
                "dual_stack.v4_via_clat",
                "set, but the v4 leg's source is not in 192.0.0.0/29",
            ));
        }
        if let Some(path) = &self.v6_fault_path {
            // The probe traces only IPv6 failing on the way to a known address while IPv4
            // reached its destination; anything else would be blamed on a network falsely.
            let reason = if self.v6.outcome.reached_destination() {
                Some("set, but the IPv6 leg reached its destination")
            } else if !self.v4.outcome.reached_destination() {
                Some("set, but the IPv4 leg failed too")
            } else if self.v6.destination.is_none() {
                Some("set, but the IPv6 leg has no destination to trace towards")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(field("dual_stack.v6_fault_path", reason));
            }
            path.validate("dual_stack.v6_fault_path")?;
        }
        Ok(())
    }
}

/// RFC 8305's Connection Attempt Delay: IPv4 is tried this long after IPv6 started.
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The family a Happy Eyeballs client connects with, given the time each family took to
/// succeed (`None` = failed), both started at the same moment in this measurement.
///
/// IPv6 is tried first and IPv4 only after the attempt delay, so IPv4 wins only when it
/// completes before IPv6 even with that head start (`v4 + delay < v6`). Address sorting and
/// the 50 ms resolution delay are not modelled: both families are resolved before either leg.
pub fn happy_eyeballs_choice(v6: Option<Duration>, v4: Option<Duration>) -> Option<Family> {
    match (v6, v4) {
        (Some(v6), Some(v4)) if v4 + CONNECTION_ATTEMPT_DELAY < v6 => Some(Family::V4),
        (Some(_), _) => Some(Family::V6),
        (None, Some(_)) => Some(Family::V4),
        (None, None) => None,
    }
}

/// Path length estimated from a reply's hop limit: senders start from 64, 128 or 255, so
/// the smallest of those at or above the received value is taken as the initial one.
pub fn hops_from_reply_hop_limit(received: u8) -> Option<u8> {
    let initial = [64u8, 128, 255].into_iter().find(|i| *i >= received)?;
    (initial - received).checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn happy_eyeballs_prefers_v6_unless_v4_beats_the_head_start() {
        assert_eq!(
            happy_eyeballs_choice(Some(MS(30)), Some(MS(10))),
            Some(Family::V6)
        );
        assert_eq!(
            happy_eyeballs_choice(Some(MS(300)), Some(MS(10))),
            Some(Family::V4)
        );
        assert_eq!(
            happy_eyeballs_choice(Some(MS(260)), Some(MS(10))),
            Some(Family::V6)
        );
        assert_eq!(happy_eyeballs_choice(None, Some(MS(10))), Some(Family::V4));
        assert_eq!(happy_eyeballs_choice(Some(MS(900)), None), Some(Family::V6));
        assert_eq!(happy_eyeballs_choice(None, None), None);
    }

    #[test]
    fn hops_come_from_the_nearest_initial_hop_limit() {
        assert_eq!(hops_from_reply_hop_limit(57), Some(8));
        assert_eq!(hops_from_reply_hop_limit(64), Some(1));
        assert_eq!(hops_from_reply_hop_limit(120), Some(9));
        assert_eq!(hops_from_reply_hop_limit(250), Some(6));
    }

    #[test]
    fn legs_are_only_the_kinds_a_spec_can_name() {
        use crate::measurement::{ErrorClass, MeasurementError, PmtuResult};
        let failed = || DualLeg {
            source: None,
            destination: None,
            duration_us: 1,
            outcome: Outcome::Failed(MeasurementError {
                class: ErrorClass::Resolution,
                message: "no A record".into(),
            }),
        };
        let mut result = DualStackResult {
            v6: Box::new(failed()),
            v4: Box::new(failed()),
            happy_eyeballs_choice: None,
            v6_hops: None,
            v4_hops: None,
            v6_nat64_prefix: None,
            v4_via_clat: false,
            v6_fault_path: None,
        };
        assert_eq!(result.validate(), Ok(()));
        result.v4.outcome = Outcome::Pmtu(PmtuResult {
            path_mtu: 1500,
            black_hole: false,
            black_hole_hop: None,
            black_hole_from: None,
            too_big: Vec::new(),
            packets_sent: 3,
            fault_path: None,
        });
        let err = result.validate().unwrap_err().to_string();
        assert!(err.contains("dual_stack.v4"), "{err}");
    }

    #[test]
    fn a_fault_path_must_match_ipv6_failing_where_ipv4_works() {
        use crate::measurement::{ConnectOutcome, FaultPath, PathHop, TcpResult};
        let tcp = |outcome| DualLeg {
            source: None,
            destination: Some("2001:db8::80".parse().unwrap()),
            duration_us: 1,
            outcome: Outcome::Tcp(TcpResult {
                port: 80,
                outcome,
                connect_ns: Some(1_000_000),
                icmp_error: None,
            }),
        };
        let path = FaultPath {
            hops: vec![PathHop {
                hop_limit: 1,
                address: "2001:db8:1::1".parse().unwrap(),
            }],
            probed_up_to: 4,
            reached_destination: false,
            packets_sent: 8,
        };
        let result = |v6, v4| DualStackResult {
            v6: Box::new(tcp(v6)),
            v4: Box::new(tcp(v4)),
            happy_eyeballs_choice: None,
            v6_hops: None,
            v4_hops: None,
            v6_nat64_prefix: None,
            v4_via_clat: false,
            v6_fault_path: Some(path.clone()),
        };
        use ConnectOutcome::{Connected, Refused, Timeout};
        assert_eq!(result(Timeout, Connected).validate(), Ok(()));
        assert_eq!(result(Timeout, Refused).validate(), Ok(()));
        for (v6, v4, reason) in [
            (Connected, Connected, "IPv6 leg reached"),
            (Refused, Connected, "IPv6 leg reached"),
            (Timeout, Timeout, "IPv4 leg failed"),
        ] {
            let err = result(v6, v4).validate().unwrap_err().to_string();
            assert!(err.contains("dual_stack.v6_fault_path"), "{err}");
            assert!(err.contains(reason), "{err}");
        }
        let mut no_destination = result(Timeout, Connected);
        no_destination.v6.destination = None;
        let err = no_destination.validate().unwrap_err().to_string();
        assert!(err.contains("no destination"), "{err}");
        // The path itself is checked too.
        let mut bad = result(Timeout, Connected);
        bad.v6_fault_path.as_mut().unwrap().probed_up_to = 0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn ping_takes_no_port() {
        assert!(DualStackSpec::new(DualInner::Ping, 80).is_err());
        assert_eq!(DualStackSpec::new(DualInner::Http, 0).unwrap().port(), 80);
    }
}

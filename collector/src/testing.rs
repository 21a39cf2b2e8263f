//! Synthetic stored results for the collector's tests and benchmarks (the daily rollups'
//! unit tests, the dashboard tests, `map_bench`): one builder instead of a copy in each.

pub mod clickhouse;

use crate::store::StoredResult;
use sixmap_shared::measurement::{
    ClockInfo, ClockState, IcmpSocketKind, MeasurementResult, PingReply, PingResult,
    TimestampSource,
};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{Family, Outcome, ProbeId, ResultKey, TaskId, UnixMicros};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// A global IPv6 destination (RIPE NCC's) for synthetic pings.
pub const DESTINATION: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0x67c, 0x2e8, 0, 0, 0, 0, 2));

/// A one-packet IPv6 ping from `probe` to [`DESTINATION`]: answered after `rtt`, or lost
/// when `rtt` is `None`; the probe's source lies in `origin`.
pub fn ping_v6(
    probe: ProbeId,
    sequence: u64,
    started_at: UnixMicros,
    rtt: Option<Duration>,
    origin: Enrichment,
) -> StoredResult {
    let replies = rtt
        .map(|rtt| PingReply {
            sequence: 0,
            rtt_ns: u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX),
            hop_limit: Some(60),
            duplicate: false,
            from: DESTINATION,
        })
        .into_iter()
        .collect();
    StoredResult {
        result: MeasurementResult {
            key: ResultKey {
                probe_id: probe,
                boot_epoch: 1,
                sequence,
            },
            task_id: TaskId::new(1).unwrap_or_else(|_| unreachable!("1 is not 0")),
            started_at,
            duration_us: 1000,
            family_requested: Family::V6,
            family_used: Some(Family::V6),
            source: None,
            destination: Some(DESTINATION),
            software_version: "0.1.0".into(),
            clock: ClockInfo {
                state: ClockState::Synchronized,
                offset_us: None,
            },
            outcome: Outcome::Ping(PingResult {
                sent: 1,
                received: u16::from(rtt.is_some()),
                replies,
                timestamp_source: TimestampSource::Kernel,
                socket_kind: IcmpSocketKind::Raw,
                errors: Vec::new(),
            }),
        },
        probe_origin: Some(origin),
        target_origin: None,
        blame: None,
    }
}

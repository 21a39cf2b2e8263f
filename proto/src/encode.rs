//! Domain types into wire messages. Infallible: domain types are valid by construction.

use crate::enums::*;
use crate::v1;
use sixmap_shared::ResultKey;
use sixmap_shared::health::{OutboxLoss, ProbeTag, SelfTest};
use sixmap_shared::measurement::{
    IcmpError, MeasurementResult, MeasurementSpec, Outcome, PingResult, SpecKind, Target,
};
use sixmap_shared::session::{Ack, Assignment, Hello, Welcome};

fn millis_u32(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

pub fn spec(spec: &MeasurementSpec) -> v1::MeasurementSpec {
    let target = match &spec.target {
        Target::Address(a) => v1::target::Kind::Address(a.to_string()),
        Target::Hostname(h) => v1::target::Kind::Hostname(h.clone()),
    };
    let kind = match &spec.kind {
        SpecKind::Ping(p) => v1::measurement_spec::Kind::Ping(v1::PingSpec {
            count: u32::from(p.count()),
            interval_ms: millis_u32(p.interval()),
            payload_size: u32::from(p.payload_size()),
        }),
        // Temporary while #4's wire mapping lands.
        other => unimplemented!("wire encoding of {}", other.measurement_kind()),
    };
    v1::MeasurementSpec {
        target: Some(v1::Target {
            kind: Some(target),
            family: family_to_wire(spec.family).into(),
        }),
        budget: Some(v1::Budget {
            timeout_ms: millis_u32(spec.timeout),
            max_packets: 0,
        }),
        kind: Some(kind),
    }
}

pub fn assignment(a: &Assignment) -> v1::TaskAssignment {
    v1::TaskAssignment {
        task_id: a.task_id.get(),
        spec: Some(spec(&a.spec)),
        interval_s: a
            .interval
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0),
        not_before_us: a.not_before.map(|t| t.0).unwrap_or(0),
    }
}

pub fn result_key(key: &ResultKey) -> v1::ResultKey {
    v1::ResultKey {
        probe_id: key.probe_id.to_string(),
        boot_epoch: key.boot_epoch,
        sequence: key.sequence,
    }
}

fn icmp_error(e: &IcmpError) -> v1::IcmpError {
    v1::IcmpError {
        icmp_type: u32::from(e.icmp_type),
        icmp_code: u32::from(e.icmp_code),
        from: e.from.to_string(),
        mtu: e.mtu.unwrap_or(0),
    }
}

fn ping_result(p: &PingResult) -> v1::PingResult {
    v1::PingResult {
        sent: u32::from(p.sent),
        received: u32::from(p.received),
        replies: p
            .replies
            .iter()
            .map(|r| v1::PingReply {
                sequence: u32::from(r.sequence),
                rtt_ns: r.rtt_ns,
                hop_limit: r.hop_limit.map(u32::from).unwrap_or(0),
                duplicate: r.duplicate,
                from: r.from.to_string(),
            })
            .collect(),
        timestamp_source: timestamp_to_wire(p.timestamp_source).into(),
        socket_kind: socket_to_wire(p.socket_kind).into(),
        errors: p.errors.iter().map(icmp_error).collect(),
    }
}

pub fn result(r: &MeasurementResult) -> v1::MeasurementResult {
    let (error, kind) = match &r.outcome {
        Outcome::Failed(e) => (
            Some(v1::MeasurementError {
                class: error_class_to_wire(e.class).into(),
                message: e.message.clone(),
            }),
            None,
        ),
        Outcome::Ping(p) => (
            None,
            Some(v1::measurement_result::Kind::Ping(ping_result(p))),
        ),
        // Temporary while #4's wire mapping lands.
        other => unimplemented!("wire encoding of {:?}", other.kind()),
    };
    v1::MeasurementResult {
        key: Some(result_key(&r.key)),
        task_id: r.task_id.get(),
        started_at_us: r.started_at.0,
        duration_us: r.duration_us,
        family_requested: family_to_wire(r.family_requested).into(),
        family_used: r
            .family_used
            .map(family_to_wire)
            .unwrap_or(v1::AddressFamily::Unspecified)
            .into(),
        source_address: r.source.map(|a| a.to_string()).unwrap_or_default(),
        destination_address: r.destination.map(|a| a.to_string()).unwrap_or_default(),
        software_version: r.software_version.clone(),
        clock_state: clock_to_wire(r.clock.state).into(),
        clock_offset_us: r.clock.offset_us.unwrap_or(0),
        error,
        kind,
    }
}

pub fn hello(h: &Hello) -> v1::Hello {
    v1::Hello {
        probe_id: h.probe_id.to_string(),
        probe_secret: h.secret.expose().to_owned(),
        software_version: h.software_version.to_string(),
        boot_epoch: h.boot_epoch,
        capabilities: h
            .capabilities
            .iter()
            .map(|k| kind_to_wire(*k).into())
            .collect(),
        local_addresses: h.local_addresses.iter().map(|a| a.to_string()).collect(),
        probe_time_us: h.probe_time.0,
        location: h.location.map(|l| v1::CoarseLocation {
            latitude_e1: l.latitude_e1(),
            longitude_e1: l.longitude_e1(),
        }),
    }
}

pub fn welcome(w: &Welcome) -> v1::Welcome {
    v1::Welcome {
        server_time_us: w.server_time.0,
        collector_version: w.collector_version.clone(),
        heartbeat_interval_s: u32::try_from(w.heartbeat_interval.as_secs()).unwrap_or(u32::MAX),
        max_batch_results: u32::try_from(w.max_batch_results).unwrap_or(u32::MAX),
    }
}

pub fn ack(a: &Ack) -> v1::Ack {
    v1::Ack {
        batch_id: a.batch_id,
        stored: a.stored.iter().map(result_key).collect(),
        rejected: a
            .rejected
            .iter()
            .map(|r| v1::Rejection {
                key: Some(result_key(&r.key)),
                reason: r.reason.clone(),
            })
            .collect(),
        stored_losses: a.stored_losses.iter().map(result_key).collect(),
    }
}

pub fn loss(l: &OutboxLoss) -> v1::OutboxLoss {
    v1::OutboxLoss {
        key: Some(result_key(&l.key)),
        reason: loss_reason_to_wire(l.reason).into(),
        count: l.count,
        bytes: l.bytes,
        first: l.first.as_ref().map(result_key),
        last: l.last.as_ref().map(result_key),
        oldest_started_at_us: l.oldest_started_at.map_or(0, |t| t.0),
        newest_started_at_us: l.newest_started_at.map_or(0, |t| t.0),
        recorded_at_us: l.recorded_at.0,
        detail: l.detail.clone(),
    }
}

pub fn self_test(t: &SelfTest) -> v1::SelfTest {
    v1::SelfTest {
        tested_at_us: t.tested_at.0,
        default_route_v6: t.default_route_v6,
        default_route_v4: t.default_route_v4,
        v4_addresses: t.v4_addresses.iter().map(|a| a.to_string()).collect(),
        v6_route_interface: t.v6_route_interface.clone().unwrap_or_default(),
        v6_route_interface_kind: interface_kind_to_wire(t.v6_route_interface_kind).into(),
        v6_route_mtu: t.v6_route_mtu.unwrap_or(0),
        aaaa_name: t.aaaa_name.clone(),
        aaaa_resolved: t.aaaa_resolved,
        nat64_prefix: t.nat64_prefix.map(|p| p.to_string()).unwrap_or_default(),
        clat: t.clat,
    }
}

pub fn tags(tags: &[ProbeTag]) -> v1::ProbeTags {
    v1::ProbeTags {
        tags: tags
            .iter()
            .map(|t| v1::ProbeTag {
                name: t.name.to_string(),
                since_us: t.since.0,
            })
            .collect(),
    }
}

//! Enum mappings shared by both directions.

use crate::v1;
use sixmap_shared::blame::{Failure, Placement};
use sixmap_shared::health::{InterfaceKind, LossReason};
use sixmap_shared::measurement::{
    ClockState, ConnectOutcome, DnsFailureClass, DnsTransport, DualInner, ErrorClass,
    ExtHeaderType, Family, IcmpSocketKind, LookupStatus, MeasurementKind, Presence, QuicFailure,
    TimestampSource, TraceProtocol, TraceStop,
};

pub(crate) fn kind_to_wire(kind: MeasurementKind) -> v1::MeasurementKind {
    use v1::MeasurementKind as W;
    match kind {
        MeasurementKind::Ping => W::Ping,
        MeasurementKind::Traceroute => W::Traceroute,
        MeasurementKind::Dns => W::Dns,
        MeasurementKind::Tcp => W::Tcp,
        MeasurementKind::Tls => W::Tls,
        MeasurementKind::Http => W::Http,
        MeasurementKind::Quic => W::Quic,
        MeasurementKind::Pmtu => W::Pmtu,
        MeasurementKind::ExtHeaders => W::ExtHeaders,
        MeasurementKind::DualStack => W::DualStack,
        MeasurementKind::Readiness => W::Readiness,
    }
}

pub(crate) fn kind_from_wire(kind: v1::MeasurementKind) -> Option<MeasurementKind> {
    MeasurementKind::ALL
        .into_iter()
        .find(|k| kind_to_wire(*k) == kind)
}

pub(crate) fn family_to_wire(family: Family) -> v1::AddressFamily {
    match family {
        Family::V6 => v1::AddressFamily::V6,
        Family::V4 => v1::AddressFamily::V4,
    }
}

pub(crate) fn family_from_wire(family: v1::AddressFamily) -> Option<Family> {
    match family {
        v1::AddressFamily::Unspecified => None,
        v1::AddressFamily::V6 => Some(Family::V6),
        v1::AddressFamily::V4 => Some(Family::V4),
    }
}

pub(crate) fn clock_to_wire(state: ClockState) -> v1::ClockState {
    match state {
        ClockState::Synchronized => v1::ClockState::Synchronized,
        ClockState::Unsynchronized => v1::ClockState::Unsynchronized,
        ClockState::Unknown => v1::ClockState::Unspecified,
    }
}

pub(crate) fn clock_from_wire(state: v1::ClockState) -> ClockState {
    match state {
        v1::ClockState::Synchronized => ClockState::Synchronized,
        v1::ClockState::Unsynchronized => ClockState::Unsynchronized,
        v1::ClockState::Unspecified => ClockState::Unknown,
    }
}

pub(crate) fn error_class_to_wire(class: ErrorClass) -> v1::measurement_error::Class {
    use v1::measurement_error::Class as W;
    match class {
        ErrorClass::Policy => W::Policy,
        ErrorClass::Resolution => W::Resolution,
        ErrorClass::Permission => W::Permission,
        ErrorClass::Network => W::Network,
        ErrorClass::Unsupported => W::Unsupported,
        ErrorClass::Internal => W::Internal,
    }
}

pub(crate) fn error_class_from_wire(class: v1::measurement_error::Class) -> Option<ErrorClass> {
    use v1::measurement_error::Class as W;
    Some(match class {
        W::Unspecified => return None,
        W::Policy => ErrorClass::Policy,
        W::Resolution => ErrorClass::Resolution,
        W::Permission => ErrorClass::Permission,
        W::Network => ErrorClass::Network,
        W::Unsupported => ErrorClass::Unsupported,
        W::Internal => ErrorClass::Internal,
    })
}

pub(crate) fn timestamp_to_wire(source: TimestampSource) -> v1::TimestampSource {
    match source {
        TimestampSource::Kernel => v1::TimestampSource::Kernel,
        TimestampSource::Userspace => v1::TimestampSource::Userspace,
    }
}

pub(crate) fn timestamp_from_wire(source: v1::TimestampSource) -> Option<TimestampSource> {
    match source {
        v1::TimestampSource::Unspecified => None,
        v1::TimestampSource::Kernel => Some(TimestampSource::Kernel),
        v1::TimestampSource::Userspace => Some(TimestampSource::Userspace),
    }
}

pub(crate) fn socket_to_wire(kind: IcmpSocketKind) -> v1::IcmpSocketKind {
    match kind {
        IcmpSocketKind::Datagram => v1::IcmpSocketKind::Datagram,
        IcmpSocketKind::Raw => v1::IcmpSocketKind::Raw,
    }
}

pub(crate) fn socket_from_wire(kind: v1::IcmpSocketKind) -> Option<IcmpSocketKind> {
    match kind {
        v1::IcmpSocketKind::Unspecified => None,
        v1::IcmpSocketKind::Datagram => Some(IcmpSocketKind::Datagram),
        v1::IcmpSocketKind::Raw => Some(IcmpSocketKind::Raw),
    }
}

pub(crate) fn loss_reason_to_wire(reason: LossReason) -> v1::LossReason {
    match reason {
        LossReason::OutboxFull => v1::LossReason::OutboxFull,
        LossReason::OutboxCorrupt => v1::LossReason::OutboxCorrupt,
        LossReason::UnreadableEntry => v1::LossReason::UnreadableEntry,
        LossReason::OutboxMissing => v1::LossReason::OutboxMissing,
        LossReason::EpochGap => v1::LossReason::EpochGap,
    }
}

pub(crate) fn loss_reason_from_wire(reason: v1::LossReason) -> Option<LossReason> {
    match reason {
        v1::LossReason::Unspecified => None,
        v1::LossReason::OutboxFull => Some(LossReason::OutboxFull),
        v1::LossReason::OutboxCorrupt => Some(LossReason::OutboxCorrupt),
        v1::LossReason::UnreadableEntry => Some(LossReason::UnreadableEntry),
        v1::LossReason::OutboxMissing => Some(LossReason::OutboxMissing),
        v1::LossReason::EpochGap => Some(LossReason::EpochGap),
    }
}

pub(crate) fn interface_kind_to_wire(kind: InterfaceKind) -> v1::InterfaceKind {
    match kind {
        InterfaceKind::Unknown => v1::InterfaceKind::Unspecified,
        InterfaceKind::Ethernet => v1::InterfaceKind::Ethernet,
        InterfaceKind::Sit => v1::InterfaceKind::Sit,
        InterfaceKind::Tunnel => v1::InterfaceKind::Tunnel,
        InterfaceKind::Ppp => v1::InterfaceKind::Ppp,
        InterfaceKind::Loopback => v1::InterfaceKind::Loopback,
        InterfaceKind::Other => v1::InterfaceKind::Other,
    }
}

/// Unknown values from newer probes read as `Unknown`: a self-test is advisory.
pub(crate) fn interface_kind_from_wire(raw: i32) -> InterfaceKind {
    match v1::InterfaceKind::try_from(raw) {
        Ok(v1::InterfaceKind::Ethernet) => InterfaceKind::Ethernet,
        Ok(v1::InterfaceKind::Sit) => InterfaceKind::Sit,
        Ok(v1::InterfaceKind::Tunnel) => InterfaceKind::Tunnel,
        Ok(v1::InterfaceKind::Ppp) => InterfaceKind::Ppp,
        Ok(v1::InterfaceKind::Loopback) => InterfaceKind::Loopback,
        Ok(v1::InterfaceKind::Other) => InterfaceKind::Other,
        Ok(v1::InterfaceKind::Unspecified) | Err(_) => InterfaceKind::Unknown,
    }
}

// The measurement enums below map UNSPECIFIED (and values a newer peer may add) to `None`:
// the decoder turns that into an error naming the field, since each of these is required.

pub(crate) fn trace_protocol_to_wire(protocol: TraceProtocol) -> v1::TracerouteProtocol {
    match protocol {
        TraceProtocol::Icmp => v1::TracerouteProtocol::Icmp,
        TraceProtocol::Udp => v1::TracerouteProtocol::Udp,
        TraceProtocol::TcpSyn => v1::TracerouteProtocol::TcpSyn,
    }
}

pub(crate) fn trace_protocol_from_wire(protocol: v1::TracerouteProtocol) -> Option<TraceProtocol> {
    match protocol {
        v1::TracerouteProtocol::Unspecified => None,
        v1::TracerouteProtocol::Icmp => Some(TraceProtocol::Icmp),
        v1::TracerouteProtocol::Udp => Some(TraceProtocol::Udp),
        v1::TracerouteProtocol::TcpSyn => Some(TraceProtocol::TcpSyn),
    }
}

pub(crate) fn trace_stop_to_wire(stop: TraceStop) -> v1::TraceStop {
    match stop {
        TraceStop::Reached => v1::TraceStop::Reached,
        TraceStop::Unreachable => v1::TraceStop::Unreachable,
        TraceStop::SilentHops => v1::TraceStop::SilentHops,
        TraceStop::MaxHops => v1::TraceStop::MaxHops,
        TraceStop::Timeout => v1::TraceStop::Timeout,
    }
}

pub(crate) fn trace_stop_from_wire(stop: v1::TraceStop) -> Option<TraceStop> {
    match stop {
        v1::TraceStop::Unspecified => None,
        v1::TraceStop::Reached => Some(TraceStop::Reached),
        v1::TraceStop::Unreachable => Some(TraceStop::Unreachable),
        v1::TraceStop::SilentHops => Some(TraceStop::SilentHops),
        v1::TraceStop::MaxHops => Some(TraceStop::MaxHops),
        v1::TraceStop::Timeout => Some(TraceStop::Timeout),
    }
}

pub(crate) fn dns_transport_to_wire(transport: DnsTransport) -> v1::DnsTransport {
    match transport {
        DnsTransport::Udp => v1::DnsTransport::Udp,
        DnsTransport::Tcp => v1::DnsTransport::Tcp,
        DnsTransport::Tls => v1::DnsTransport::Tls,
        DnsTransport::Https => v1::DnsTransport::Https,
    }
}

pub(crate) fn dns_transport_from_wire(transport: v1::DnsTransport) -> Option<DnsTransport> {
    match transport {
        v1::DnsTransport::Unspecified => None,
        v1::DnsTransport::Udp => Some(DnsTransport::Udp),
        v1::DnsTransport::Tcp => Some(DnsTransport::Tcp),
        v1::DnsTransport::Tls => Some(DnsTransport::Tls),
        v1::DnsTransport::Https => Some(DnsTransport::Https),
    }
}

pub(crate) fn dns_failure_to_wire(class: Option<DnsFailureClass>) -> v1::DnsFailureClass {
    use v1::DnsFailureClass as W;
    match class {
        None => W::Unspecified,
        Some(DnsFailureClass::Timeout) => W::Timeout,
        Some(DnsFailureClass::Refused) => W::Refused,
        Some(DnsFailureClass::Unreachable) => W::Unreachable,
        Some(DnsFailureClass::Tls) => W::Tls,
        Some(DnsFailureClass::Certificate) => W::Certificate,
        Some(DnsFailureClass::Http) => W::Http,
        Some(DnsFailureClass::Malformed) => W::Malformed,
        Some(DnsFailureClass::Other) => W::Other,
    }
}

pub(crate) fn dns_failure_from_wire(class: v1::DnsFailureClass) -> Option<DnsFailureClass> {
    use v1::DnsFailureClass as W;
    match class {
        W::Unspecified => None,
        W::Timeout => Some(DnsFailureClass::Timeout),
        W::Refused => Some(DnsFailureClass::Refused),
        W::Unreachable => Some(DnsFailureClass::Unreachable),
        W::Tls => Some(DnsFailureClass::Tls),
        W::Certificate => Some(DnsFailureClass::Certificate),
        W::Http => Some(DnsFailureClass::Http),
        W::Malformed => Some(DnsFailureClass::Malformed),
        W::Other => Some(DnsFailureClass::Other),
    }
}

pub(crate) fn connect_to_wire(outcome: ConnectOutcome) -> v1::ConnectOutcome {
    match outcome {
        ConnectOutcome::Connected => v1::ConnectOutcome::Connected,
        ConnectOutcome::Refused => v1::ConnectOutcome::Refused,
        ConnectOutcome::Timeout => v1::ConnectOutcome::Timeout,
        ConnectOutcome::Unreachable => v1::ConnectOutcome::Unreachable,
    }
}

pub(crate) fn connect_from_wire(outcome: v1::ConnectOutcome) -> Option<ConnectOutcome> {
    match outcome {
        v1::ConnectOutcome::Unspecified => None,
        v1::ConnectOutcome::Connected => Some(ConnectOutcome::Connected),
        v1::ConnectOutcome::Refused => Some(ConnectOutcome::Refused),
        v1::ConnectOutcome::Timeout => Some(ConnectOutcome::Timeout),
        v1::ConnectOutcome::Unreachable => Some(ConnectOutcome::Unreachable),
    }
}

/// `None` is "no failure" (FAILURE_NONE), not an unknown value: the caller checks the number.
pub(crate) fn quic_failure_to_wire(failure: Option<QuicFailure>) -> v1::quic_result::Failure {
    use v1::quic_result::Failure as W;
    match failure {
        None => W::None,
        Some(QuicFailure::UdpBlocked) => W::UdpBlocked,
        Some(QuicFailure::Handshake) => W::Handshake,
        Some(QuicFailure::Certificate) => W::Certificate,
    }
}

pub(crate) fn quic_failure_from_wire(failure: v1::quic_result::Failure) -> Option<QuicFailure> {
    use v1::quic_result::Failure as W;
    match failure {
        W::None => None,
        W::UdpBlocked => Some(QuicFailure::UdpBlocked),
        W::Handshake => Some(QuicFailure::Handshake),
        W::Certificate => Some(QuicFailure::Certificate),
    }
}

pub(crate) fn ext_header_to_wire(header: ExtHeaderType) -> v1::ExtHeaderType {
    match header {
        ExtHeaderType::HopByHop => v1::ExtHeaderType::HopByHop,
        ExtHeaderType::DestinationOptions => v1::ExtHeaderType::DestinationOptions,
        ExtHeaderType::Fragment => v1::ExtHeaderType::Fragment,
    }
}

pub(crate) fn ext_header_from_wire(header: v1::ExtHeaderType) -> Option<ExtHeaderType> {
    match header {
        v1::ExtHeaderType::Unspecified => None,
        v1::ExtHeaderType::HopByHop => Some(ExtHeaderType::HopByHop),
        v1::ExtHeaderType::DestinationOptions => Some(ExtHeaderType::DestinationOptions),
        v1::ExtHeaderType::Fragment => Some(ExtHeaderType::Fragment),
    }
}

pub(crate) fn dual_inner_to_wire(inner: DualInner) -> v1::MeasurementKind {
    match inner {
        DualInner::Ping => v1::MeasurementKind::Ping,
        DualInner::Tcp => v1::MeasurementKind::Tcp,
        DualInner::Http => v1::MeasurementKind::Http,
    }
}

/// `None` for kinds that cannot be paired (and UNSPECIFIED).
pub(crate) fn dual_inner_from_wire(kind: v1::MeasurementKind) -> Option<DualInner> {
    match kind {
        v1::MeasurementKind::Ping => Some(DualInner::Ping),
        v1::MeasurementKind::Tcp => Some(DualInner::Tcp),
        v1::MeasurementKind::Http => Some(DualInner::Http),
        _ => None,
    }
}

pub(crate) fn presence_to_wire(presence: Presence) -> v1::Presence {
    match presence {
        Presence::Yes => v1::Presence::Yes,
        Presence::No => v1::Presence::No,
        Presence::Inconclusive => v1::Presence::Inconclusive,
    }
}

pub(crate) fn presence_from_wire(presence: v1::Presence) -> Option<Presence> {
    match presence {
        v1::Presence::Unspecified => None,
        v1::Presence::Yes => Some(Presence::Yes),
        v1::Presence::No => Some(Presence::No),
        v1::Presence::Inconclusive => Some(Presence::Inconclusive),
    }
}

pub(crate) fn lookup_status_to_wire(status: LookupStatus) -> v1::LookupStatus {
    match status {
        LookupStatus::Found => v1::LookupStatus::Found,
        LookupStatus::NoData => v1::LookupStatus::NoData,
        LookupStatus::NxDomain => v1::LookupStatus::NxDomain,
        LookupStatus::Failed => v1::LookupStatus::Failed,
    }
}

pub(crate) fn lookup_status_from_wire(status: v1::LookupStatus) -> Option<LookupStatus> {
    match status {
        v1::LookupStatus::Unspecified => None,
        v1::LookupStatus::Found => Some(LookupStatus::Found),
        v1::LookupStatus::NoData => Some(LookupStatus::NoData),
        v1::LookupStatus::NxDomain => Some(LookupStatus::NxDomain),
        v1::LookupStatus::Failed => Some(LookupStatus::Failed),
    }
}

pub(crate) fn fault_failure_to_wire(failure: Failure) -> v1::FaultFailure {
    match failure {
        Failure::V6Broken => v1::FaultFailure::V6Broken,
        Failure::PmtuBlackHole => v1::FaultFailure::PmtuBlackHole,
        Failure::ExtHeaderDrop => v1::FaultFailure::ExtHeaderDrop,
    }
}

pub(crate) fn fault_failure_from_wire(failure: v1::FaultFailure) -> Option<Failure> {
    Failure::ALL
        .into_iter()
        .find(|f| fault_failure_to_wire(*f) == failure)
}

pub(crate) fn placement_to_wire(placement: Placement) -> v1::FaultPlacement {
    match placement {
        Placement::Access => v1::FaultPlacement::Access,
        Placement::Transit => v1::FaultPlacement::Transit,
        Placement::Destination => v1::FaultPlacement::Destination,
        Placement::Unknown => v1::FaultPlacement::Unknown,
    }
}

pub(crate) fn placement_from_wire(placement: v1::FaultPlacement) -> Option<Placement> {
    Placement::ALL
        .into_iter()
        .find(|p| placement_to_wire(*p) == placement)
}

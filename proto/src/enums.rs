//! Enum mappings shared by both directions.

use crate::v1;
use sixmap_shared::measurement::{
    ClockState, ErrorClass, Family, IcmpSocketKind, MeasurementKind, TimestampSource,
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

use super::*;
use sixmap_shared::measurement::{
    DualLeg, DualStackResult, ErrorClass, ExtHeaderOutcome, ExtHeaderResult, ExtHeaderType,
    IcmpSocketKind, MeasurementError, PathHop, PingResult, PmtuResult, TimestampSource,
};

const PROBE_AS: u32 = 64500;
const TRANSIT_AS: u32 = 64510;
const DEST_AS: u32 = 64520;
const DEST: &str = "2001:db8:30::80";

/// The lab's plan: the probe's ISP in 2001:db8:10::/44, transit in :20::/44, the
/// destination's network in :30::/44; anything else unknown.
fn asn_of(address: IpAddr) -> Option<u32> {
    let IpAddr::V6(v6) = address else {
        return None;
    };
    let s = v6.segments();
    if s[0] != 0x2001 || s[1] != 0xdb8 {
        return None;
    }
    match s[2] >> 4 {
        1 => Some(PROBE_AS),
        2 => Some(TRANSIT_AS),
        3 => Some(DEST_AS),
        _ => None,
    }
}

fn path(hops: &[(u8, &str)], reached: bool) -> FaultPath {
    FaultPath {
        hops: hops
            .iter()
            .map(|&(hop_limit, address)| PathHop {
                hop_limit,
                address: address.parse().unwrap(),
            })
            .collect(),
        probed_up_to: hops.iter().map(|h| h.0).max().unwrap_or(0) + 3,
        reached_destination: reached,
        packets_sent: 40,
    }
}

fn v6_broken(path: &FaultPath) -> Blame {
    let observation = Observation {
        failure: Failure::V6Broken,
        path,
        silent_at: None,
        destination: Some(DEST.parse().unwrap()),
    };
    attribute(&observation, Some(PROBE_AS), Some(DEST_AS), &asn_of)
}

#[test]
fn a_path_dying_after_the_isp_router_is_the_access() {
    let blame = v6_broken(&path(
        &[(1, "2001:db8:11::1"), (2, "2001:db8:12::1")],
        false,
    ));
    assert_eq!(blame.placement, Placement::Access);
    assert_eq!(blame.responsible_asn, Some(PROBE_AS));
    let last = blame.last_answering.unwrap();
    assert_eq!((last.hop_limit, last.asn), (2, Some(PROBE_AS)));
    // Nothing answered beyond: the first silent hop has no address.
    let silent = blame.first_silent.unwrap();
    assert_eq!(
        (silent.hop_limit, silent.address, silent.asn),
        (3, None, None)
    );
    assert!(!blame.boundary);
}

#[test]
fn nothing_answering_or_only_the_home_router_is_the_access() {
    let blame = v6_broken(&path(&[], false));
    assert_eq!(blame.placement, Placement::Access);
    assert_eq!(blame.responsible_asn, Some(PROBE_AS));
    assert_eq!(blame.last_answering, None);
    assert_eq!(blame.first_silent.unwrap().hop_limit, 1);

    // A CPE with a unique-local address, then an RFC 1918 one: no network named.
    let blame = v6_broken(&path(&[(1, "fd00::1"), (2, "192.168.1.1")], false));
    assert_eq!(blame.placement, Placement::Access);
    assert_eq!(blame.responsible_asn, Some(PROBE_AS));
    assert_eq!(
        blame.last_answering.unwrap().address,
        Some("192.168.1.1".parse().unwrap())
    );
}

#[test]
fn a_path_dying_in_another_network_between_the_ends_is_transit() {
    let blame = v6_broken(&path(
        &[
            (1, "2001:db8:11::1"),
            (2, "2001:db8:21::1"),
            (3, "2001:db8:22::1"),
        ],
        false,
    ));
    assert_eq!(blame.placement, Placement::Transit);
    assert_eq!(blame.responsible_asn, Some(TRANSIT_AS));
}

#[test]
fn a_private_hop_after_public_ones_is_passed_over() {
    // Carrier-internal addressing after the transit's router: the transit still decides.
    let blame = v6_broken(&path(
        &[(1, "2001:db8:11::1"), (2, "2001:db8:21::1"), (3, "fd12::1")],
        false,
    ));
    assert_eq!(blame.placement, Placement::Transit);
    assert_eq!(blame.responsible_asn, Some(TRANSIT_AS));
    assert_eq!(blame.last_answering.unwrap().hop_limit, 3);
}

#[test]
fn a_path_dying_in_the_destination_network_or_at_the_host_is_the_destination() {
    let blame = v6_broken(&path(
        &[
            (1, "2001:db8:11::1"),
            (2, "2001:db8:21::1"),
            (3, "2001:db8:31::1"),
        ],
        false,
    ));
    assert_eq!(blame.placement, Placement::Destination);
    assert_eq!(blame.responsible_asn, Some(DEST_AS));

    // The trace reached the host (only the measured service failed).
    let blame = v6_broken(&path(&[(1, "2001:db8:11::1"), (4, DEST)], true));
    assert_eq!(blame.placement, Placement::Destination);
    assert_eq!(blame.first_silent, None);
}

#[test]
fn an_as_the_prefix_data_does_not_know_is_unknown() {
    let blame = v6_broken(&path(
        &[(1, "2001:db8:11::1"), (2, "2001:db8:ff::1")],
        false,
    ));
    assert_eq!(blame.placement, Placement::Unknown);
    assert_eq!(blame.responsible_asn, None);

    // Without the probe's AS, another AS cannot be called transit.
    let p = path(&[(1, "2001:db8:21::1")], false);
    let observation = Observation {
        failure: Failure::V6Broken,
        path: &p,
        silent_at: None,
        destination: Some(DEST.parse().unwrap()),
    };
    let blame = attribute(&observation, None, Some(DEST_AS), &asn_of);
    assert_eq!(blame.placement, Placement::Unknown);
    assert_eq!(blame.responsible_asn, Some(TRANSIT_AS));
}

#[test]
fn hops_out_of_order_and_strays_beyond_the_destination_are_put_right() {
    let mut p = path(
        &[
            (3, "2001:db8:21::1"),
            (1, "2001:db8:11::1"),
            (2, "2001:db8:11::2"),
        ],
        false,
    );
    let blame = v6_broken(&p);
    assert_eq!(blame.last_answering.unwrap().hop_limit, 3);
    assert_eq!(blame.placement, Placement::Transit);

    // An answer from beyond the hop where the destination answered is a stray.
    p.hops = path(
        &[(1, "2001:db8:11::1"), (2, DEST), (4, "2001:db8:21::1")],
        false,
    )
    .hops;
    let blame = v6_broken(&p);
    assert_eq!(blame.placement, Placement::Destination);
    assert_eq!(blame.last_answering.unwrap().hop_limit, 2);
}

#[test]
fn a_located_drop_names_the_first_silent_router_and_its_boundary() {
    let p = path(
        &[
            (1, "2001:db8:11::1"),
            (2, "2001:db8:12::1"),
            (3, "2001:db8:21::1"),
            (4, DEST),
        ],
        true,
    );
    // Large packets die at hop 3 (the transit's router): the ISP's answered last.
    let observation = Observation {
        failure: Failure::PmtuBlackHole,
        path: &p,
        silent_at: Some(3),
        destination: Some(DEST.parse().unwrap()),
    };
    let blame = attribute(&observation, Some(PROBE_AS), Some(DEST_AS), &asn_of);
    assert_eq!(blame.placement, Placement::Access);
    let silent = blame.first_silent.unwrap();
    assert_eq!(silent.address, Some("2001:db8:21::1".parse().unwrap()));
    assert_eq!(silent.asn, Some(TRANSIT_AS));
    assert!(blame.boundary);

    // Headers dropped at hop 4: the transit's router answered last, before the host.
    let observation = Observation {
        failure: Failure::ExtHeaderDrop,
        silent_at: Some(4),
        ..observation
    };
    let blame = attribute(&observation, Some(PROBE_AS), Some(DEST_AS), &asn_of);
    assert_eq!(blame.placement, Placement::Transit);
    assert_eq!(blame.responsible_asn, Some(TRANSIT_AS));

    // Not located: the plain path, which works, cannot say where.
    let observation = Observation {
        silent_at: None,
        ..observation
    };
    let blame = attribute(&observation, Some(PROBE_AS), Some(DEST_AS), &asn_of);
    assert_eq!(blame.placement, Placement::Unknown);
    assert_eq!(blame.last_answering, None);
}

#[test]
fn only_failures_with_a_path_are_observed() {
    let p = path(&[(1, "2001:db8:11::1")], false);
    let ping = |received| {
        Outcome::Ping(PingResult {
            sent: 1,
            received,
            replies: vec![],
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Raw,
            errors: vec![],
        })
    };
    let leg = |outcome| DualLeg {
        source: None,
        destination: Some(DEST.parse().unwrap()),
        duration_us: 1,
        outcome,
    };
    let failed = || {
        Outcome::Failed(MeasurementError {
            class: ErrorClass::Network,
            message: "timed out".into(),
        })
    };
    let mut dual = DualStackResult {
        v6: Box::new(leg(failed())),
        v4: Box::new(leg(ping(1))),
        happy_eyeballs_choice: None,
        v6_hops: None,
        v4_hops: None,
        v6_nat64_prefix: None,
        v4_via_clat: false,
        v6_fault_path: None,
    };
    assert_eq!(observe(&Outcome::DualStack(dual.clone()), None), None);
    dual.v6_fault_path = Some(p.clone());
    let outcome = Outcome::DualStack(dual.clone());
    let seen = observe(&outcome, None).unwrap();
    assert_eq!(seen.failure, Failure::V6Broken);
    assert_eq!(seen.destination, Some(DEST.parse().unwrap()));

    let pmtu = |black_hole| PmtuResult {
        path_mtu: 1280,
        black_hole,
        black_hole_hop: black_hole.then_some(2),
        black_hole_from: None,
        too_big: vec![],
        packets_sent: 9,
        fault_path: Some(p.clone()),
    };
    assert_eq!(observe(&Outcome::Pmtu(pmtu(false)), None), None);
    assert_eq!(
        observe(&Outcome::Pmtu(pmtu(true)), None).unwrap().silent_at,
        Some(2)
    );

    let ext = |dropped: &[(ExtHeaderType, Option<u8>)]| ExtHeaderResult {
        outcomes: dropped
            .iter()
            .map(|&(header, hop)| ExtHeaderOutcome {
                header,
                survived: hop.is_none(),
                dropped_at_hop: hop,
                last_responder: None,
                icmp_error: None,
            })
            .collect(),
        packets_sent: 9,
        fault_path: Some(p.clone()),
    };
    let all_survived = ext(&[(ExtHeaderType::HopByHop, None)]);
    assert_eq!(observe(&Outcome::ExtHeaders(all_survived), None), None);
    let two = ext(&[
        (ExtHeaderType::HopByHop, Some(3)),
        (ExtHeaderType::Fragment, Some(2)),
    ]);
    let outcome = Outcome::ExtHeaders(two.clone());
    let seen = observe(&outcome, None).unwrap();
    assert_eq!(
        (seen.failure, seen.silent_at),
        (Failure::ExtHeaderDrop, Some(2))
    );

    // What the wire decoder refuses today, kept by a store from before: no attribution.
    // A path where IPv6 worked, or where IPv4 failed as well, or towards no address.
    let mut worked = dual.clone();
    worked.v6.outcome = ping(1);
    assert_eq!(observe(&Outcome::DualStack(worked), None), None);
    let mut both_failed = dual.clone();
    both_failed.v4.outcome = failed();
    assert_eq!(observe(&Outcome::DualStack(both_failed), None), None);
    let mut nowhere = dual.clone();
    nowhere.v6.destination = None;
    assert_eq!(
        observe(&Outcome::DualStack(nowhere), DEST.parse().ok()),
        None
    );
    // Paths that are not paths, in each kind that carries one.
    type Damage = Box<dyn Fn(&mut FaultPath)>;
    let damaged: Vec<Damage> = vec![
        Box::new(|p| p.probed_up_to = 0),
        Box::new(|p| p.probed_up_to = 200),
        Box::new(|p| p.hops[0].address = "::ffff:192.0.2.1".parse().unwrap()),
        Box::new(|p| p.hops[0].address = "ff02::1".parse().unwrap()),
        Box::new(|p| p.hops[0].address = "::".parse().unwrap()),
        Box::new(|p| p.hops[0].address = "192.0.2.1".parse().unwrap()),
        Box::new(|p| p.hops.push(p.hops[0])),
        Box::new(|p| p.hops[0].hop_limit = 0),
        Box::new(|p| {
            p.probed_up_to = 64;
            p.hops = (1..=65)
                .map(|n| PathHop {
                    hop_limit: n,
                    address: "2001:db8:11::1".parse().unwrap(),
                })
                .collect();
        }),
    ];
    for damage in &damaged {
        let mut d = dual.clone();
        damage(d.v6_fault_path.as_mut().unwrap());
        assert_eq!(observe(&Outcome::DualStack(d), None), None);
        let mut pm = pmtu(true);
        damage(pm.fault_path.as_mut().unwrap());
        assert_eq!(observe(&Outcome::Pmtu(pm), None), None);
        let mut e = two.clone();
        damage(e.fault_path.as_mut().unwrap());
        assert_eq!(observe(&Outcome::ExtHeaders(e), None), None);
    }
}

#[test]
fn a_dual_stack_result_is_attributed_from_its_legs_and_counted_by_the_probes_origin() {
    use crate::figures::{Figure, FigureKey, FigureSet};
    let lookup = |a: IpAddr| {
        asn_of(a).map(|asn| Enrichment {
            asn: Some(asn),
            as_name: None,
            country: "XA".parse().ok(),
        })
    };
    let ping = |received| {
        Outcome::Ping(PingResult {
            sent: 1,
            received,
            replies: vec![],
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Raw,
            errors: vec![],
        })
    };
    let dual = Outcome::DualStack(DualStackResult {
        v6: Box::new(DualLeg {
            source: Some("2001:db8:11::2".parse().unwrap()),
            destination: Some(DEST.parse().unwrap()),
            duration_us: 1,
            outcome: ping(0),
        }),
        v4: Box::new(DualLeg {
            source: Some("10.0.0.2".parse().unwrap()),
            destination: Some("10.0.9.2".parse().unwrap()),
            duration_us: 1,
            outcome: ping(1),
        }),
        happy_eyeballs_choice: None,
        v6_hops: None,
        v4_hops: None,
        v6_nat64_prefix: None,
        v4_via_clat: false,
        v6_fault_path: Some(path(&[(1, "2001:db8:11::1"), (2, "2001:db8:21::1")], false)),
    });
    // The result itself names no address (a dual-stack result's are in its legs).
    let blame = of_result(&dual, None, None, None, &lookup).unwrap();
    assert_eq!(blame.placement, Placement::Transit);
    assert_eq!(blame.probe_asn, Some(PROBE_AS));
    assert_eq!(blame.destination_asn, Some(DEST_AS));
    assert_eq!(blame.probe_country, "XA".parse().ok());

    let mut stored = crate::testing::ping_v6(
        "00000000000000aa".parse().unwrap(),
        1,
        sixmap_shared::UnixMicros(5 * crate::figures::DAY_US + 1),
        None,
        Enrichment::default(),
    );
    stored.probe_origin = None;
    stored.blame = Some(blame);
    let mut set = FigureSet::default();
    set.fold(&stored, &Default::default(), 0);
    set.fold(&stored, &Default::default(), 0);
    let breaks: Vec<_> = set
        .rows
        .iter()
        .filter(|(k, _)| matches!(k, FigureKey::Breaks { .. }))
        .collect();
    assert_eq!(breaks.len(), 1);
    let (key, figure) = breaks[0];
    assert_eq!(
        key,
        &FigureKey::Breaks {
            day: 5,
            country: "XA".parse().ok(),
            asn: Some(PROBE_AS),
            failure: Failure::V6Broken,
            placement: Placement::Transit,
            responsible: Some(TRANSIT_AS),
        }
    );
    assert_eq!(figure, &Figure::Breaks(crate::figures::Breaks { count: 2 }));
    // Keys and values survive their encoding.
    assert_eq!(&FigureKey::decode(&key.encode()).unwrap(), key);
    assert_eq!(&Figure::decode(&figure.encode()).unwrap(), figure);
}

#[test]
fn a_trace_cut_short_before_the_path_went_silent_is_unknown() {
    // The trace answered up to hop 3 and stopped there (its budget): no silence was seen.
    // Its last answer is in transit: a whole trace would blame transit.
    let mut cut = path(
        &[
            (1, "2001:db8:10::1"),
            (2, "2001:db8:11::1"),
            (3, "2001:db8:20::1"),
        ],
        false,
    );
    cut.probed_up_to = 3;
    let blame = v6_broken(&cut);
    assert_eq!(blame.placement, Placement::Unknown, "{blame:?}");
    assert_eq!(blame.responsible_asn, None);
    // One silent hop probed is not enough either; two are.
    cut.probed_up_to = 4;
    assert_eq!(v6_broken(&cut).placement, Placement::Unknown);
    cut.probed_up_to = 5;
    assert_eq!(v6_broken(&cut).placement, Placement::Transit);
}

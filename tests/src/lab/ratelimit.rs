//! Routers that rate-limit ICMPv6 errors as Linux does out of the box, for traceroutes that
//! must stay polite. The other scenarios turn the limits off (`net.ipv6.icmp.ratelimit=0`)
//! so that every probe gets its answer; here each router keeps the kernel's defaults:
//!
//! - `net.ipv6.icmp.ratelimit=1000` with `ratemask=0-1,3-127`: every ICMPv6 error except
//!   Packet Too Big (time exceeded, destination unreachable, ...) takes a token from a
//!   bucket per peer (the probe's address). The bucket holds 6 tokens and refills one per
//!   1000 ms shifted right by `(128 - prefix length of the route back) / 32`: every 250 ms
//!   towards the probe's /64. Echo replies are not limited.
//! - `net.ipv4.icmp_msgs_per_sec=1000`, `icmp_msgs_burst=50`: the global ICMP budget (per
//!   namespace on recent kernels, hence best effort like the lab's own setting).
//!
//! So a router answers a burst of about six probes, then about four per second.

use super::many::{self, ManyTargets};
use super::scenarios::{self, LongPath};
use super::{Lab, LabError, Role};

/// The kernel defaults, as Debian ships them.
pub const LINUX_DEFAULTS: [&str; 2] = [
    "net.ipv6.icmp.ratelimit=1000",
    "net.ipv6.icmp.ratemask=0-1,3-127",
];
const GLOBAL_DEFAULTS: [&str; 2] = [
    "net.ipv4.icmp_msgs_per_sec=1000",
    "net.ipv4.icmp_msgs_burst=50",
];

/// Puts every router of `lab` back on the kernel's ICMPv6 rate limits.
pub fn limit_routers(lab: &Lab) -> Result<(), LabError> {
    let routers: Vec<String> = lab
        .nodes()
        .filter(|n| n.role == Role::Router)
        .map(|n| n.name.clone())
        .collect();
    for router in &routers {
        for setting in LINUX_DEFAULTS {
            lab.exec(router, &["sysctl", "-q", "-w", setting])?;
        }
        for setting in GLOBAL_DEFAULTS {
            let _ = lab.exec_unchecked(router, &["sysctl", "-q", "-w", setting]);
        }
    }
    Ok(())
}

/// `long_path(routers)` with rate-limiting routers.
pub fn ratelimited_path(routers: usize) -> Result<LongPath, LabError> {
    let path = scenarios::long_path(routers)?;
    limit_routers(&path.lab)?;
    Ok(path)
}

/// `many_targets(per_host)` with rate-limiting routers: r1 and r2 are on every path, so a
/// run of many traceroutes asks them far more often than they answer unless it is polite.
pub fn ratelimited_many(per_host: usize) -> Result<ManyTargets, LabError> {
    let s = many::many_targets(per_host)?;
    limit_routers(&s.lab)?;
    Ok(s)
}

//! The loadgen's only unsafe code: raising the open-file limit (`setrlimit(RLIMIT_NOFILE)`).
//! Every simulated session is a socket here and one in the collector, which inherits the
//! limit when the loadgen starts it.

#![allow(unsafe_code)]

/// The open-file limit after the call: at least `wanted` if the process may raise it
/// (root may raise the hard limit up to `fs.nr_open`), else the hard limit.
pub fn raise_nofile(wanted: u64) -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a `struct rlimit` into the pointer we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= wanted {
        return Ok(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: limit.rlim_max.max(wanted),
    };
    // SAFETY: setrlimit reads a `struct rlimit` we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
        return Ok(wanted);
    }
    // Not allowed above the hard limit (not root): take what there is.
    let soft = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const soft) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit.rlim_max)
}

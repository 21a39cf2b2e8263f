//! The only unsafe code of the lab: attaching a TUN device (`ioctl(TUNSETIFF)`) and moving the
//! calling thread into a network namespace (`setns(2)`). Neither has a std equivalent.
//! Everything that interprets the packets read from a device lives in safe code (`impair.rs`).
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether `name` is a valid interface name: 1..=15 bytes (the kernel's `IFNAMSIZ` less the
/// terminating NUL), no '/', ':', NUL or whitespace, and not "." or "..".
pub(crate) fn valid_ifname(name: &str) -> bool {
    (1..libc::IFNAMSIZ).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// Opens `/dev/net/tun` and attaches the TUN device `name` (`IFF_TUN | IFF_NO_PI`: every read
/// and write is one bare IP packet), creating it if needed, in the calling thread's network
/// namespace. The device lives as long as the returned file (unless it was made persistent).
pub(crate) fn open_tun(name: &str) -> io::Result<File> {
    if !valid_ifname(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    // SAFETY: `ifreq` is plain old data (a name array and a union of integers, arrays and
    // pointers); all-zero bytes are a valid value of every field.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    // The name is at most IFNAMSIZ - 1 bytes (checked above), so the last byte stays NUL.
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: `file` is an open descriptor of /dev/net/tun for the duration of the call;
    // TUNSETIFF reads and writes one `struct ifreq`, and `request` is a valid, exclusively
    // borrowed `ifreq` that outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &raw mut request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Moves the calling thread (only it: `setns` is per thread) into the network namespace whose
/// handle is at `path`, e.g. `/var/run/netns/<name>`. Threads and processes it starts
/// afterwards inherit that namespace.
pub(crate) fn enter_netns(path: &Path) -> io::Result<()> {
    let handle = File::open(path)?;
    // SAFETY: `handle` is an open descriptor for the duration of the call; setns only reads
    // it and changes the calling thread's namespace, touching no memory of ours.
    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_before_any_syscall() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a\tb",
            "a:b",
            "a\0b",
            "sixteen-bytes-xx",
        ] {
            assert!(!valid_ifname(bad), "{bad:?} accepted");
            let error = open_tun(bad).map(|_| ()).expect_err("invalid name opened");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        for good in ["t", "tunA", "fifteen-bytes-x", "imp0.a"] {
            assert!(valid_ifname(good), "{good:?} refused");
        }
    }
}

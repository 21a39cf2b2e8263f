//! What the probe's process does before its first line of Rust: the binary's C `main` calls
//! [`prepare`] and then the command line's work (`src/main.rs`, `#![no_main]`).
//!
//! Why not std's `fn main`: std's start-up also installs the stack-overflow handler, and to
//! place it glibc reads and parses `/proc/self/maps` (`pthread_getattr_np` on the main
//! thread). That was the largest single cost of a one-shot `measure traceroute` after the
//! loader (0.18 ms of 2.5 ms on the lab's 8-hop path; Debian's traceroute starts without it).
//! What the probe loses is only the "has overflowed its stack" message: an overflow still
//! ends the process on the guard page (SIGSEGV).
//!
//! What std's start-up does that the probe needs is kept here, with std's behaviour:
//! - standard descriptors 0–2 that are closed are opened on `/dev/null`, so a socket the
//!   probe opens (a raw one, with CAP_NET_RAW) can never become "stdout" and receive what
//!   is printed;
//! - SIGPIPE is ignored: a write to a closed pipe or socket is an error to handle, not the
//!   end of the daemon.
//!
//! At the end the caller must leave through [`std::process::exit`], which flushes stdout as
//! std's `main` would.
#![allow(unsafe_code)]

use std::io;

/// Makes the process as std's `main` leaves it, minus the stack-overflow handler.
///
/// Call once, first thing, while the process has a single thread.
pub fn prepare() -> io::Result<()> {
    open_closed_standard_descriptors()?;
    ignore_sigpipe()
}

/// Opens `/dev/null` on each of descriptors 0, 1 and 2 that is closed.
fn open_closed_standard_descriptors() -> io::Result<()> {
    // In order: `open` returns the lowest free descriptor, which is the closed one.
    for fd in closed_standard_descriptors()? {
        // SAFETY: the path is a NUL-terminated literal; the flags are plain values.
        let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if opened != fd {
            return Err(io::Error::other(format!(
                "standard descriptor {fd} is closed and /dev/null could not take its place"
            )));
        }
    }
    Ok(())
}

/// Which of descriptors 0, 1 and 2 are closed: one `poll`, or, where `poll` cannot answer
/// (a descriptor limit under 3, no memory), `fcntl` on each, as std does.
fn closed_standard_descriptors() -> io::Result<Vec<libc::c_int>> {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is a valid array of three `pollfd` for the duration of the call; a
        // zero timeout makes `poll` only report each descriptor's state.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if ready >= 0 {
            return Ok(fds
                .iter()
                .filter(|p| p.revents & libc::POLLNVAL != 0)
                .map(|p| p.fd)
                .collect());
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EINVAL | libc::EAGAIN | libc::ENOMEM) => break,
            _ => return Err(error),
        }
    }
    let mut closed = Vec::new();
    for fd in [0, 1, 2] {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EBADF) {
                return Err(error);
            }
            closed.push(fd);
        }
    }
    Ok(closed)
}

fn ignore_sigpipe() -> io::Result<()> {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no handler code runs.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

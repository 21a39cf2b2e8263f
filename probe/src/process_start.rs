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
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three `pollfd` for the duration of the call; a zero
    // timeout makes `poll` only report each descriptor's state.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    if ready < 0 {
        return Err(io::Error::last_os_error());
    }
    // In order: `open` returns the lowest free descriptor, which is the closed one.
    for pollfd in fds {
        if pollfd.revents & libc::POLLNVAL == 0 {
            continue;
        }
        // SAFETY: the path is a NUL-terminated literal; the flags are plain values.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd != pollfd.fd {
            return Err(io::Error::other(format!(
                "standard descriptor {} is closed and /dev/null could not take its place",
                pollfd.fd
            )));
        }
    }
    Ok(())
}

fn ignore_sigpipe() -> io::Result<()> {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no handler code runs.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

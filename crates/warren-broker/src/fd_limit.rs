//! The process's open-file limit (`RLIMIT_NOFILE`). Every connection, pending or
//! established, holds a file descriptor, and the usual soft default of 1024 is below
//! what `max_connections` + `max_pending_handshakes` need with the defaults.

/// Raises the soft `RLIMIT_NOFILE` of this process to its hard limit and returns the
/// soft limit in force afterwards. The limit is process-wide, so the library never
/// changes it on its own: call this once at startup (`warren broker` does). On
/// platforms without `setrlimit` it returns an [`std::io::ErrorKind::Unsupported`]
/// error.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    imp::raise()
}

#[cfg(unix)]
mod imp {
    use std::io;

    /// Largest soft limit to ask for when the hard limit is unlimited.
    fn ceiling() -> libc::rlim_t {
        #[cfg(target_os = "linux")]
        {
            // The kernel refuses more than fs.nr_open descriptors per process.
            std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1 << 20)
        }
        #[cfg(target_os = "macos")]
        {
            // OPEN_MAX: macOS refuses a larger soft limit.
            10_240
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            1 << 20
        }
    }

    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on most, not all, Unix targets
    pub(super) fn raise() -> io::Result<u64> {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid, writable rlimit for getrlimit to fill.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let target = if lim.rlim_max == libc::RLIM_INFINITY {
            ceiling()
        } else {
            lim.rlim_max.min(ceiling())
        };
        if target > lim.rlim_cur {
            let want = libc::rlimit {
                rlim_cur: target,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: `want` is a valid rlimit; setrlimit only reads it.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
                return Err(io::Error::last_os_error());
            }
            lim.rlim_cur = target;
        }
        Ok(lim.rlim_cur as u64)
    }
}

#[cfg(not(unix))]
mod imp {
    pub(super) fn raise() -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "RLIMIT_NOFILE exists only on Unix",
        ))
    }
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on most, not all, Unix targets
    fn raising_leaves_at_least_the_current_soft_limit() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `raise`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let raised = super::raise_fd_limit().expect("raise RLIMIT_NOFILE");
        assert!(raised >= lim.rlim_cur as u64, "{raised} < {}", lim.rlim_cur);
        // Idempotent.
        assert_eq!(super::raise_fd_limit().expect("raise again"), raised);
    }
}

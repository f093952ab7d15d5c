//! The free-disk alarm, as RabbitMQ's `disk_free_limit`: the free space of the disk
//! holding the data directory is checked periodically, and below the limit the
//! [`Source::Disk`] alarm blocks publishers until space is freed.
//!
//! Free space is what `statvfs(3)` reports as available to unprivileged users
//! (`f_bavail * f_frsize`), read through `libc` (already in the build through tokio,
//! and the thinnest safe-to-wrap binding of the one call needed).

use crate::alarm::{Alarms, Source};
use crate::shutdown::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// RabbitMQ's default `disk_free_limit`: 50 MB.
pub(crate) const DEFAULT_LIMIT: u64 = 50_000_000;

/// How often free space is checked.
const INTERVAL: Duration = Duration::from_secs(1);

/// Bytes available to unprivileged users on the filesystem holding `path`.
#[cfg(unix)]
pub(crate) fn available(path: &Path) -> std::io::Result<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `st`
    // points to writable memory of the size `statvfs` fills in.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `statvfs` returned 0, so it filled in the whole struct.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Free space is not measured on this platform: never low.
#[cfg(not(unix))]
pub(crate) fn available(_path: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

/// Watches the free space under one directory against a limit.
#[derive(Debug)]
pub(crate) struct Monitor {
    dir: PathBuf,
    limit: u64,
    alarms: Arc<Alarms>,
    /// The last check failed (logged once until a check succeeds again).
    failing: bool,
}

impl Monitor {
    /// A monitor for `dir` that raises the disk alarm below `limit` bytes free.
    pub(crate) fn new(dir: PathBuf, limit: u64, alarms: Arc<Alarms>) -> Self {
        Self {
            dir,
            limit,
            alarms,
            failing: false,
        }
    }

    /// Measure once and raise or clear the alarm. If free space cannot be read, the
    /// alarm stays as it was.
    pub(crate) fn check(&mut self) {
        match available(&self.dir) {
            Ok(free) => {
                self.failing = false;
                self.apply(free);
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read free disk space");
                }
                self.failing = true;
            }
        }
    }

    /// Raise or clear the alarm for `free` bytes available.
    fn apply(&self, free: u64) {
        let low = free < self.limit;
        let was = self.alarms.active().has(Source::Disk);
        if low == was {
            return;
        }
        if low {
            tracing::warn!(
                free,
                limit = self.limit,
                dir = %self.dir.display(),
                "free disk space below the limit: blocking publishers"
            );
        } else {
            tracing::info!(
                free,
                limit = self.limit,
                dir = %self.dir.display(),
                "free disk space back above the limit: unblocking"
            );
        }
        self.alarms.set(Source::Disk, low);
    }

    /// Check every [`INTERVAL`] until shutdown (each check off the async threads, as a
    /// filesystem may be slow to answer).
    pub(crate) async fn run(mut self, mut stop: Shutdown) {
        let mut interval = tokio::time::interval(INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.recv() => break,
                _ = interval.tick() => {
                    self = match tokio::task::spawn_blocking(move || {
                        self.check();
                        self
                    })
                    .await
                    {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::error!(error = %e, "disk monitor stopped");
                            break;
                        }
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_follows_free_space_against_the_limit() {
        let alarms = Alarms::new();
        let m = Monitor::new(PathBuf::from("."), 1000, alarms.clone());
        m.apply(5000);
        assert!(!alarms.any());
        m.apply(999);
        assert!(alarms.active().has(Source::Disk));
        m.apply(1000);
        assert!(!alarms.any(), "at the limit is enough, as in RabbitMQ");
    }

    #[test]
    fn a_limit_of_zero_never_alarms() {
        let alarms = Alarms::new();
        let m = Monitor::new(PathBuf::from("."), 0, alarms.clone());
        m.apply(0);
        assert!(!alarms.any());
    }

    #[test]
    fn free_space_of_the_current_directory_is_readable() {
        let free = available(Path::new(".")).unwrap();
        assert!(free > 0, "the build directory's disk has some space");
        assert!(available(Path::new("/nonexistent/warren")).is_err());
    }
}

//! The process's side of memory: its resident set size (from `/proc/self/statm`)
//! and giving freed memory back to the system (glibc's `malloc_trim`, which
//! returns the free pages of every malloc arena, not only the top of the heap).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

/// Reads this process's resident set size, keeping `/proc/self/statm` open.
#[derive(Debug)]
pub(crate) struct Rss {
    statm: Mutex<Option<File>>,
    page: usize,
}

impl Rss {
    /// A reader, or `None` where `/proc/self/statm` cannot be read (not Linux).
    pub(crate) fn open() -> Option<Self> {
        let rss = Self {
            statm: Mutex::new(File::open("/proc/self/statm").ok()),
            page: page_size(),
        };
        rss.read().map(|_| rss)
    }

    /// The resident set size in bytes now.
    pub(crate) fn read(&self) -> Option<usize> {
        let mut guard = self.statm.lock().unwrap_or_else(|p| p.into_inner());
        let file = guard.as_mut()?;
        let mut text = String::with_capacity(64);
        file.seek(SeekFrom::Start(0)).ok()?;
        file.read_to_string(&mut text).ok()?;
        parse_statm_resident(&text).map(|pages| pages.saturating_mul(self.page))
    }
}

/// The second field of `/proc/PID/statm`: resident pages.
pub(crate) fn parse_statm_resident(text: &str) -> Option<usize> {
    text.split_whitespace().nth(1)?.parse().ok()
}

fn page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions; it returns -1 on error.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if let Ok(n) = usize::try_from(n) {
            if n > 0 {
                return n;
            }
        }
    }
    4096
}

/// Large allocations (message bodies from 1 MiB) get their own mapping, returned
/// to the system as soon as they are freed.
const MMAP_THRESHOLD: i32 = 1 << 20;
/// The free top of a malloc heap past this is returned to the system on free.
const TRIM_THRESHOLD: i32 = 4 << 20;

/// Fixes glibc's malloc thresholds (where the allocator is glibc's), for the whole
/// process. glibc raises both after each large free (up to 32 and 64 MiB), and
/// `malloc_trim` does not release the free top of a thread's arena: with the
/// thresholds raised, each tokio worker's arena kept tens of MiB after a queue of
/// small messages was deleted.
pub(crate) fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; it returns 0 on error.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 0
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 0
        };
        if !ok {
            tracing::debug!("mallopt refused the malloc thresholds");
        }
    }
}

/// Gives the free memory of every malloc arena back to the system, where the
/// allocator is glibc's (elsewhere there is nothing to do: other allocators
/// return memory on their own or offer no such call).
pub(crate) fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only takes the allocator's own locks; 0 keeps no pad.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_resident_pages_are_the_second_field() {
        assert_eq!(
            parse_statm_resident("5021 1234 567 12 0 890 0\n"),
            Some(1234)
        );
        assert_eq!(parse_statm_resident("5021\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_resident_size() {
        let rss = Rss::open().and_then(|r| r.read());
        assert!(rss.is_some_and(|n| n > 1 << 20), "rss {rss:?}");
    }
}

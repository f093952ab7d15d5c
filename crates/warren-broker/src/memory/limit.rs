//! Where the memory high watermark comes from: an absolute size, a fraction of the
//! machine's memory (RabbitMQ's `vm_memory_high_watermark.relative`, 0.4 by
//! default), or none. The machine's memory is `MemTotal` from `/proc/meminfo`, or
//! the cgroup's memory limit when that is lower (a container), as RabbitMQ reads it.

use std::fmt;

/// The memory high watermark of a broker: past it, publishers are blocked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryLimit {
    /// A fraction of the machine's memory (or of the cgroup's limit, if lower),
    /// like RabbitMQ's `vm_memory_high_watermark.relative`. The default is 0.4.
    Relative(f64),
    /// A size in bytes, like RabbitMQ's `vm_memory_high_watermark.absolute`.
    Absolute(usize),
    /// No limit: publishers are never blocked for memory.
    Unlimited,
}

/// RabbitMQ's default `vm_memory_high_watermark`.
pub const DEFAULT_FRACTION: f64 = 0.4;

/// What RabbitMQ assumes when it cannot tell the machine's memory.
const UNKNOWN_TOTAL: u64 = 1 << 30;

impl Default for MemoryLimit {
    fn default() -> Self {
        MemoryLimit::Relative(DEFAULT_FRACTION)
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryLimit::Relative(x) => write!(f, "{x} of the machine's memory"),
            MemoryLimit::Absolute(n) => write!(f, "{n} bytes"),
            MemoryLimit::Unlimited => f.write_str("no limit"),
        }
    }
}

impl MemoryLimit {
    /// The limit in bytes on this machine (`None` for [`MemoryLimit::Unlimited`]).
    pub(crate) fn resolve(self) -> Option<usize> {
        self.resolve_with(machine_memory)
    }

    /// The limit in bytes, with the machine's memory given by `total` (for tests).
    fn resolve_with(self, total: impl FnOnce() -> u64) -> Option<usize> {
        match self {
            MemoryLimit::Relative(x) => {
                let bytes = (total() as f64 * x.max(0.0)).round();
                Some(usize::try_from(bytes as u64).unwrap_or(usize::MAX).max(1))
            }
            MemoryLimit::Absolute(n) => Some(n.max(1)),
            MemoryLimit::Unlimited => None,
        }
    }
}

/// The memory this process may use: `MemTotal`, or a lower cgroup limit (v2
/// `memory.max` or v1 `memory.limit_in_bytes`, the process's own cgroup and the
/// mount's root); 1 GiB if `/proc/meminfo` cannot be read, as RabbitMQ assumes.
pub(crate) fn machine_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let limits = cgroup_limit_files(&own)
        .into_iter()
        .filter_map(|path| std::fs::read_to_string(path).ok());
    let total = total_memory(&meminfo, limits);
    if parse_meminfo_total(&meminfo).is_none() {
        tracing::warn!(
            assumed = total,
            "cannot read MemTotal from /proc/meminfo; assuming 1 GiB of memory"
        );
    }
    total
}

/// `MemTotal` capped by the lowest cgroup limit among `cgroup_limits` (the texts
/// of `memory.max` / `memory.limit_in_bytes` files); 1 GiB without `MemTotal`.
pub(crate) fn total_memory<S: AsRef<str>>(
    meminfo: &str,
    cgroup_limits: impl IntoIterator<Item = S>,
) -> u64 {
    let total = parse_meminfo_total(meminfo).unwrap_or(UNKNOWN_TOTAL);
    cgroup_limits
        .into_iter()
        .filter_map(|text| parse_cgroup_limit(text.as_ref()))
        .fold(total, u64::min)
}

/// `MemTotal` from `/proc/meminfo` text, in bytes.
pub(crate) fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    let scale = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("b") => 1,
        Some("kb") => 1024,
        Some("mb") => 1 << 20,
        Some("gb") => 1 << 30,
        Some(_) => return None,
    };
    n.checked_mul(scale)
}

/// A cgroup memory limit file's text in bytes: `None` for `max` (v2, no limit),
/// anything unreadable, 0, or v1's "no limit" (a value near `i64::MAX`).
pub(crate) fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n > 0 && n < (1 << 62)).then_some(n)
}

/// The limit files that may apply to this process, given `/proc/self/cgroup`.
fn cgroup_limit_files(own: &str) -> Vec<String> {
    let mut files = vec![
        "/sys/fs/cgroup/memory.max".to_owned(),
        "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_owned(),
    ];
    for line in own.lines() {
        // "0::/path" (v2) or "4:memory:/path" (v1).
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        if path.is_empty() || path.contains("..") {
            continue;
        }
        if controllers.is_empty() {
            files.push(format!("/sys/fs/cgroup{path}/memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24683568 kB\nMemFree:        19562872 kB\n\
                           MemAvailable:   23704472 kB\n";

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        assert_eq!(parse_meminfo_total(MEMINFO), Some(24_683_568 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 12 kB\n"), None);
        assert_eq!(parse_meminfo_total("MemTotal: lots\n"), None);
    }

    #[test]
    fn the_default_bound_is_four_tenths_of_memtotal() {
        let total = total_memory(MEMINFO, ["max\n"]);
        assert_eq!(total, 24_683_568 * 1024);
        let limit = MemoryLimit::default().resolve_with(|| total);
        assert_eq!(
            limit,
            Some((24_683_568.0 * 1024.0 * 0.4_f64).round() as usize)
        );
    }

    #[test]
    fn a_lower_cgroup_limit_wins_and_no_limit_is_ignored() {
        // v2: "max" is no limit; v1: no limit reads as a number near i64::MAX.
        let texts = ["max\n", "9223372036854771712\n", "536870912\n", "garbage"];
        assert_eq!(total_memory(MEMINFO, texts), 512 << 20);
        let limit = MemoryLimit::Relative(0.4).resolve_with(|| 512 << 20);
        assert_eq!(limit, Some(214_748_365));
        // A cgroup limit above the machine's memory does not raise it.
        assert_eq!(
            total_memory(MEMINFO, ["99999999999999\n"]),
            24_683_568 * 1024
        );
    }

    #[test]
    fn without_meminfo_one_gib_is_assumed() {
        assert_eq!(total_memory("", Vec::<String>::new()), 1 << 30);
    }

    #[test]
    fn absolute_and_unlimited_need_no_machine_memory() {
        let never = || -> u64 { unreachable!("not read") };
        assert_eq!(
            MemoryLimit::Absolute(64 << 20).resolve_with(never),
            Some(64 << 20)
        );
        assert_eq!(MemoryLimit::Unlimited.resolve_with(never), None);
    }

    #[test]
    fn cgroup_files_follow_the_process_cgroup() {
        let own = "4:memory:/process_api/abc\n0::/user.slice/u.service\n1:cpu:/\n";
        let files = cgroup_limit_files(own);
        assert!(
            files.contains(&"/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes".into())
        );
        assert!(files.contains(&"/sys/fs/cgroup/user.slice/u.service/memory.max".into()));
        assert!(files.contains(&"/sys/fs/cgroup/memory.max".into()));
        assert!(!files.iter().any(|f| f.contains("cpu")));
    }
}

//! CPU time per call for `warren bench`, read from `/proc` (Linux).
//!
//! The bench runs its client, its echo workers and an embedded broker on tokio
//! runtimes of their own, whose threads carry the role's name (`bench-client`,
//! `bench-worker`, `bench-broker`); a connection's task runs on its role's
//! runtime. Threads without such a name (a broker's store thread; lapin's I/O thread
//! per connection, before warren-rpc had its own client) are given to the role whose
//! connections were opened while they appeared (see [`Roles::claim_new`]). A role's CPU is the sum of its threads'
//! `utime + stime` deltas (`/proc/self/task/*/stat`); the process's own delta
//! (`/proc/self/stat`, which keeps the time of threads that have exited) less the
//! roles' is reported as `other`. A broker in another process is read from
//! `/proc/PID/stat`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

/// Thread-name prefix of the bench's client runtime.
pub const CLIENT: &str = "bench-client";
/// Thread-name prefix of the bench's worker runtime.
pub const WORKER: &str = "bench-worker";
/// Thread-name prefix of the embedded broker's runtime.
pub const BROKER: &str = "bench-broker";

/// One line of `/proc/.../stat`: the thread's (or process's) name and CPU ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// `comm`: the name, at most 15 bytes.
    pub name: String,
    /// `utime + stime`, in clock ticks.
    pub ticks: u64,
}

/// Parses a `stat` line. The name sits between the first `(` and the last `)` and
/// may itself hold spaces and parentheses; `utime` and `stime` are the 14th and 15th
/// fields, the 12th and 13th after the name.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_owned();
    let mut rest = line.get(close + 1..)?.split_ascii_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some(Stat {
        name,
        ticks: utime.checked_add(stime)?,
    })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux in practice).
fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

fn read_stat(path: &str) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// This process's threads now: thread id -> name and ticks. Threads that end while
/// being read are skipped.
pub fn threads() -> HashMap<u32, Stat> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(stat) = read_stat(&format!("/proc/self/task/{tid}/stat")) {
            out.insert(tid, stat);
        }
    }
    out
}

/// Which role each thread works for.
#[derive(Debug, Default)]
pub struct Roles {
    /// Threads given to a role by [`Roles::claim_new`], by thread id.
    claimed: HashMap<u32, &'static str>,
    /// Thread ids seen so far.
    seen: HashSet<u32>,
}

impl Roles {
    /// Starts with the threads that exist now (they belong to no role).
    pub fn new() -> Self {
        Roles {
            claimed: HashMap::new(),
            seen: threads().into_keys().collect(),
        }
    }

    /// Gives `role` the threads started since the last call that do not carry a
    /// bench runtime's name (a broker's store thread, a third-party client's I/O threads).
    pub fn claim_new(&mut self, role: &'static str) {
        for (tid, stat) in threads() {
            if self.seen.insert(tid) && role_by_name(&stat.name).is_none() {
                self.claimed.insert(tid, role);
            }
        }
    }

    fn role_of(&self, tid: u32, name: &str) -> Option<&'static str> {
        role_by_name(name).or_else(|| self.claimed.get(&tid).copied())
    }
}

fn role_by_name(name: &str) -> Option<&'static str> {
    [CLIENT, WORKER, BROKER]
        .into_iter()
        .find(|role| name.starts_with(role))
}

/// CPU ticks at one moment, by role.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// This process's ticks, every thread, living or ended.
    process: u64,
    /// Each living thread's ticks and role.
    threads: HashMap<u32, (Option<&'static str>, u64)>,
    /// A broker process's ticks, when one is watched.
    broker_process: Option<u64>,
}

/// Reads the ticks of this process, of its threads, and of `broker_pid` if given.
pub fn sample(roles: &Roles, broker_pid: Option<u32>) -> Sample {
    let threads = threads()
        .into_iter()
        .map(|(tid, s)| (tid, (roles.role_of(tid, &s.name), s.ticks)))
        .collect();
    Sample {
        process: read_stat("/proc/self/stat").map_or(0, |s| s.ticks),
        threads,
        broker_process: broker_pid
            .and_then(|pid| read_stat(&format!("/proc/{pid}/stat")))
            .map(|s| s.ticks),
    }
}

/// CPU spent between two samples, by role.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// The client runtime and its connections' I/O threads.
    pub client: Duration,
    /// The workers' runtime and their connections' I/O threads.
    pub worker: Duration,
    /// The embedded broker's threads, or the watched broker process; `None` when the
    /// broker is elsewhere and not watched.
    pub broker: Option<Duration>,
    /// The rest of this process (the main runtime, ended threads).
    pub other: Duration,
    /// This whole process.
    pub process: Duration,
}

/// What was spent from `before` to `after`, with `hz` ticks a second. A thread seen
/// only in `after` counts from zero; one gone by `after` counts in `other`.
pub fn spent(before: &Sample, after: &Sample, hz: u64) -> Spent {
    let d = |ticks: u64| Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz.max(1));
    let mut by_role: HashMap<&'static str, u64> = HashMap::new();
    for (tid, (role, ticks)) in &after.threads {
        let Some(role) = role else { continue };
        let start = before.threads.get(tid).map_or(0, |(_, t)| *t);
        *by_role.entry(role).or_default() += ticks.saturating_sub(start);
    }
    let get = |role| by_role.get(role).copied().unwrap_or(0);
    let process = after.process.saturating_sub(before.process);
    let in_roles = get(CLIENT) + get(WORKER) + get(BROKER);
    let broker = match (before.broker_process, after.broker_process) {
        (Some(b), Some(a)) => Some(d(a.saturating_sub(b))),
        _ if after.threads.values().any(|(r, _)| *r == Some(BROKER)) => Some(d(get(BROKER))),
        _ => None,
    };
    Spent {
        client: d(get(CLIENT)),
        worker: d(get(WORKER)),
        broker,
        other: d(process.saturating_sub(in_roles)),
        process: d(process),
    }
}

/// CPU per call, in µs, by role.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerCall {
    /// Client.
    pub client: f64,
    /// Workers.
    pub worker: f64,
    /// Broker, when measured.
    pub broker: Option<f64>,
    /// The rest of this process.
    pub other: f64,
    /// This whole process.
    pub process: f64,
    /// This process's CPU over the wall time: cores kept busy.
    pub cores: f64,
}

impl PerCall {
    /// `spent` shared over `calls` calls made in `elapsed`.
    pub fn new(spent: &Spent, calls: u64, elapsed: Duration) -> Self {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / calls.max(1) as f64;
        PerCall {
            client: per(spent.client),
            worker: per(spent.worker),
            broker: spent.broker.map(per),
            other: per(spent.other),
            process: per(spent.process),
            cores: spent.process.as_secs_f64() / elapsed.as_secs_f64().max(1e-9),
        }
    }

    /// The JSON object of these figures.
    pub fn json(&self) -> String {
        let broker = self.broker.map_or("null".to_owned(), |b| format!("{b:.2}"));
        format!(
            "{{\"client\":{:.2},\"worker\":{:.2},\"broker\":{broker},\"other\":{:.2},\"process\":{:.2},\"process_cores\":{:.3}}}",
            self.client, self.worker, self.other, self.process, self.cores
        )
    }
}

impl fmt::Display for PerCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {:.1} µs  worker {:.1} µs",
            self.client, self.worker
        )?;
        if let Some(b) = self.broker {
            write!(f, "  broker {b:.1} µs")?;
        }
        write!(
            f,
            "  other {:.1} µs  (this process {:.1} µs, {:.2} cores)",
            self.other, self.process, self.cores
        )
    }
}

/// Measures from construction to [`Meter::stop`].
#[derive(Debug)]
pub struct Meter {
    before: Sample,
    broker_pid: Option<u32>,
}

impl Meter {
    /// Takes the first sample.
    pub fn start(roles: &Roles, broker_pid: Option<u32>) -> Self {
        Meter {
            before: sample(roles, broker_pid),
            broker_pid,
        }
    }

    /// Takes the second sample and returns what was spent in between.
    pub fn stop(&self, roles: &Roles) -> Spent {
        spent(
            &self.before,
            &sample(roles, self.broker_pid),
            ticks_per_sec(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_and_parens_in_the_name() {
        let line = "4242 (bench-client (2)) S 1 4242 4242 0 -1 4194368 900 0 0 0 123 45 0 0 20 0 3 0 100 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                name: "bench-client (2)".into(),
                ticks: 168
            })
        );
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parens"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = read_stat("/proc/self/stat").expect("Linux /proc");
        assert!(!me.name.is_empty());
        assert!(!threads().is_empty());
        assert!(ticks_per_sec() > 0);
    }

    fn at(process: u64, threads: &[(u32, Option<&'static str>, u64)]) -> Sample {
        Sample {
            process,
            threads: threads.iter().map(|&(t, r, k)| (t, (r, k))).collect(),
            broker_process: None,
        }
    }

    #[test]
    fn deltas_by_role_with_new_and_ended_threads() {
        let before = at(
            100,
            &[(1, None, 50), (2, Some(CLIENT), 10), (3, Some(WORKER), 20)],
        );
        // Thread 4 (client) started in between; thread 3 (worker) went on; an ended
        // thread's 5 ticks show only in the process total.
        let after = at(
            200,
            &[
                (1, None, 55),
                (2, Some(CLIENT), 40),
                (3, Some(WORKER), 50),
                (4, Some(CLIENT), 5),
            ],
        );
        let s = spent(&before, &after, 100);
        assert_eq!(s.client, Duration::from_millis(350));
        assert_eq!(s.worker, Duration::from_millis(300));
        assert_eq!(s.broker, None);
        assert_eq!(s.other, Duration::from_millis(350));
        assert_eq!(s.process, Duration::from_secs(1));
        let per = PerCall::new(&s, 1000, Duration::from_secs(2));
        assert!((per.client - 350.0).abs() < 1e-9);
        assert!((per.process - 1000.0).abs() < 1e-9);
        assert!((per.cores - 0.5).abs() < 1e-9);
        assert_eq!(
            per.json(),
            "{\"client\":350.00,\"worker\":300.00,\"broker\":null,\"other\":350.00,\"process\":1000.00,\"process_cores\":0.500}"
        );
    }

    #[test]
    fn broker_in_process_or_watched_by_pid() {
        let before = at(0, &[(9, Some(BROKER), 0)]);
        let after = at(30, &[(9, Some(BROKER), 20)]);
        assert_eq!(
            spent(&before, &after, 100).broker,
            Some(Duration::from_millis(200))
        );
        let mut before = at(0, &[]);
        let mut after = at(0, &[]);
        before.broker_process = Some(1000);
        after.broker_process = Some(1250);
        let s = spent(&before, &after, 100);
        assert_eq!(s.broker, Some(Duration::from_millis(2500)));
        assert_eq!(s.other, Duration::ZERO);
    }

    #[test]
    fn names_pick_the_role() {
        assert_eq!(role_by_name("bench-worker"), Some(WORKER));
        assert_eq!(role_by_name("lapin-io-loop"), None);
        let mut roles = Roles::new();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("lapin-io-loop".into())
            .spawn(move || wait.recv())
            .expect("spawn");
        roles.claim_new(WORKER);
        let _ = done.send(());
        let _ = t.join();
        assert!(roles.claimed.values().any(|r| *r == WORKER));
    }
}

//! `rabbitmqctl` for the tests that stop, restart, disconnect or reconfigure a
//! RabbitMQ. They run on a node the test suite started itself
//! (`WARREN_DISRUPTIVE_RABBITMQ_URL` and `WARREN_DISRUPTIVE_RABBITMQ_NODE`, from
//! `bash scripts/rabbitmq-node.sh start`), never on `WARREN_RABBITMQ_URL` unless the
//! user opts in with `WARREN_DISRUPT_RABBITMQ=1`. Every change is undone by a guard,
//! also when the test fails.

use std::process::Command;

use crate::{required_env, Target};

/// `rabbitmqctl`, aimed at one node (`-n`), or at its default node when `None`.
#[derive(Debug, Clone)]
pub struct Rabbitmqctl {
    node: Option<String>,
}

/// The RabbitMQ the disruptive tests may disrupt, and `rabbitmqctl` for its node.
///
/// `WARREN_DISRUPTIVE_RABBITMQ_URL` with `WARREN_DISRUPTIVE_RABBITMQ_NODE`; or, when
/// `WARREN_DISRUPT_RABBITMQ=1`, `WARREN_RABBITMQ_URL` with `WARREN_RABBITMQ_NODE`
/// (default: `rabbitmqctl`'s own default node). Neither: the test fails, saying what
/// to set.
pub fn disruptive() -> (Target, Rabbitmqctl) {
    if std::env::var("WARREN_DISRUPT_RABBITMQ").as_deref() == Ok("1") {
        let url = required_env(
            "WARREN_RABBITMQ_URL",
            "WARREN_DISRUPT_RABBITMQ=1 points the disruptive tests at it",
        );
        let node = std::env::var("WARREN_RABBITMQ_NODE")
            .ok()
            .filter(|n| !n.is_empty());
        return (
            Target::external("rabbitmq", url, Vec::new()),
            Rabbitmqctl { node },
        );
    }
    let how = "these tests stop, disconnect and reconfigure a RabbitMQ: start a \
               throw-away node with `bash scripts/rabbitmq-node.sh start` and set \
               WARREN_DISRUPTIVE_RABBITMQ_URL to what it prints and \
               WARREN_DISRUPTIVE_RABBITMQ_NODE=warren-faults@localhost \
               (or set WARREN_DISRUPT_RABBITMQ=1 to use WARREN_RABBITMQ_URL's broker)";
    let url = required_env("WARREN_DISRUPTIVE_RABBITMQ_URL", how);
    let node = required_env("WARREN_DISRUPTIVE_RABBITMQ_NODE", how);
    if std::env::var("WARREN_RABBITMQ_URL").is_ok_and(|u| u == url) {
        panic!("WARREN_DISRUPTIVE_RABBITMQ_URL is WARREN_RABBITMQ_URL: {how}");
    }
    (
        Target::external("rabbitmq", url, Vec::new()),
        Rabbitmqctl::node(node),
    )
}

impl Rabbitmqctl {
    /// `rabbitmqctl -n node`.
    pub fn node(node: impl Into<String>) -> Rabbitmqctl {
        Rabbitmqctl {
            node: Some(node.into()),
        }
    }

    /// Runs `rabbitmqctl args` and returns its stdout, or says how it failed.
    pub fn try_output(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("rabbitmqctl");
        if let Some(node) = &self.node {
            cmd.args(["-n", node]);
        }
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("rabbitmqctl {args:?} did not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "rabbitmqctl (node {:?}) {args:?} failed ({}): {}{}",
                self.node,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `rabbitmqctl args` and returns its stdout; a failure panics.
    pub fn output(&self, args: &[&str]) -> String {
        self.try_output(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `rabbitmqctl args`; a failure panics.
    pub fn run(&self, args: &[&str]) {
        self.output(args);
    }

    /// The node's memory high watermark, as it is now.
    pub fn watermark(&self) -> Watermark {
        let out = self.output(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]);
        Watermark::parse(&out).unwrap_or_else(|| panic!("unexpected watermark {out:?}"))
    }

    /// Sets the node's memory high watermark.
    pub fn set_watermark(&self, w: &Watermark) -> Result<(), String> {
        let value = match w {
            Watermark::Relative(f) => vec![f.to_string()],
            Watermark::Absolute(n) => vec!["absolute".to_owned(), n.to_string()],
        };
        let mut args = vec!["set_vm_memory_high_watermark"];
        args.extend(value.iter().map(String::as_str));
        self.try_output(&args).map(drop)
    }

    /// Raises a memory alarm (watermark near 0) until the guard drops, which puts the
    /// watermark back to what it was before.
    pub fn memory_alarm(&self) -> MemoryAlarm {
        let before = self.watermark();
        let alarm = MemoryAlarm {
            ctl: self.clone(),
            before,
        };
        if let Err(e) = self.set_watermark(&Watermark::Relative(0.000001)) {
            panic!("{e}");
        }
        alarm
    }

    /// `stop_app` until the guard drops, which runs `start_app` and puts back the
    /// memory watermark (a restarted app forgets a watermark set at run time and goes
    /// back to its configured one).
    pub fn stop_app(&self) -> AppStopped {
        let watermark = self.watermark();
        self.run(&["stop_app"]);
        AppStopped {
            ctl: self.clone(),
            watermark,
        }
    }
}

/// A node's `vm_memory_high_watermark`: a fraction of RAM or a number of bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Watermark {
    /// A fraction of the machine's RAM (`0.4`, RabbitMQ's default).
    Relative(f64),
    /// A number of bytes.
    Absolute(u64),
}

impl Watermark {
    /// Parses what `vm_memory_monitor:get_vm_memory_high_watermark()` prints: `0.4`,
    /// `1.0e-6`, `{absolute,1073741824}` or `{relative,0.4}`.
    pub fn parse(s: &str) -> Option<Watermark> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (kind, value) = inner.split_once(',')?;
            return match kind {
                "absolute" => value.parse().ok().map(Watermark::Absolute),
                "relative" => value.parse().ok().map(Watermark::Relative),
                _ => None,
            };
        }
        s.parse().ok().map(Watermark::Relative)
    }
}

/// A raised memory alarm; dropping it restores the watermark it replaced.
#[must_use = "the alarm clears when this guard drops"]
pub struct MemoryAlarm {
    ctl: Rabbitmqctl,
    before: Watermark,
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        restore("the memory watermark", self.ctl.set_watermark(&self.before));
    }
}

/// A stopped RabbitMQ application; dropping the guard starts it again with the
/// watermark it had.
#[must_use = "the app starts again when this guard drops"]
pub struct AppStopped {
    ctl: Rabbitmqctl,
    watermark: Watermark,
}

impl Drop for AppStopped {
    fn drop(&mut self) {
        let started = self.ctl.try_output(&["start_app"]).map(drop);
        restore("the RabbitMQ app", started);
        restore(
            "the memory watermark",
            self.ctl.set_watermark(&self.watermark),
        );
    }
}

/// The outcome of a guard's undo, run from its `drop`: a failure panics, except while
/// the test is already failing (a second panic would abort), when it is printed.
fn restore(what: &str, undone: Result<(), String>) {
    match undone {
        Ok(()) => {}
        Err(e) if std::thread::panicking() => eprintln!("could not restore {what}: {e}"),
        Err(e) => panic!("could not restore {what}: {e}"),
    }
}

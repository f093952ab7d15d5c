//! The request queue `warren serve` declares: whether the broker can give it what was
//! asked for (quorum queues), and a broker's 406 `inequivalent arg` refusal told as
//! the clash it is and how to resolve it.
//!
//! No AMQP field says whether a broker has quorum queues (RabbitMQ's `capabilities`
//! table does not list them, and the embedded broker serves them as classic queues),
//! so [`quorum_support`] asks by declaration: an *exclusive* quorum queue is refused
//! by every broker that has quorum queues (RabbitMQ: 406 `invalid property
//! 'exclusive-owner'`) and accepted, as a classic queue, by one that does not.

use std::time::Duration;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

/// How long the quorum check may take at one address before it gives up (the server's
/// own start then reports whatever is wrong with the broker).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the quorum check found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumSupport {
    /// The broker refused an exclusive quorum queue: it has real quorum queues.
    Supported,
    /// The broker accepted an exclusive quorum queue (so it would serve `--quorum` as a
    /// classic queue), or refused `x-queue-type: quorum` itself; the text says which.
    Unsupported(String),
    /// No broker could be asked (unreachable, refused the login, too slow): the server's
    /// start reports that with its own error.
    Unknown,
}

/// Asks the first broker of `urls` that answers whether it has quorum queues.
pub async fn quorum_support(urls: &[String]) -> QuorumSupport {
    for url in urls {
        match tokio::time::timeout(PROBE_TIMEOUT, probe(url)).await {
            Ok(Some(found)) => return found,
            Ok(None) | Err(_) => continue,
        }
    }
    QuorumSupport::Unknown
}

/// One probe at `url`; `None` when no answer could be had there.
async fn probe(url: &str) -> Option<QuorumSupport> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .ok()?;
    let found = probe_on(&connection).await;
    let _ = connection.close(200, "quorum check done".into()).await;
    found
}

async fn probe_on(connection: &Connection) -> Option<QuorumSupport> {
    let channel = connection.create_channel().await.ok()?;
    let name = format!(
        "warren.quorum-check.{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(name.as_str().into(), options, arguments)
        .await;
    let refusal = match &declared {
        Ok(_) => {
            // Exclusive: it goes with the connection anyway; delete it now all the same.
            let _ = channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await;
            None
        }
        Err(e) => match e.kind() {
            lapin::ErrorKind::ProtocolError(refusal) => {
                Some((refusal.get_id(), refusal.get_message().to_string()))
            }
            _ => return None,
        },
    };
    verdict(refusal)
}

/// What the broker's answer to the exclusive quorum queue says: `None` if it accepted
/// it, else its reply code and text. `None` back: the answer says nothing about it.
fn verdict(refusal: Option<(u16, String)>) -> Option<QuorumSupport> {
    match refusal {
        None => Some(QuorumSupport::Unsupported(
            "it accepted an exclusive quorum queue, so it would serve --quorum as a classic \
             queue"
                .to_owned(),
        )),
        // RabbitMQ names the first property a quorum queue cannot have.
        Some((PRECONDITION_FAILED, text))
            if ["exclusive", "auto-delete", "non-durable"]
                .iter()
                .any(|property| text.contains(property)) =>
        {
            Some(QuorumSupport::Supported)
        }
        Some((PRECONDITION_FAILED, text)) => Some(QuorumSupport::Unsupported(format!(
            "it refused one: {text}"
        ))),
        Some(_) => None,
    }
}

/// AMQP's reply code for a declaration the broker will not honour.
const PRECONDITION_FAILED: u16 = 406;

/// A queue that exists with an argument other than the one a declaration asked for,
/// as a broker's 406 `inequivalent arg` text says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    /// The queue's name.
    pub queue: String,
    /// The argument that differs (`durable`, `x-queue-type`, ...).
    pub arg: String,
    /// Its value in the declaration (`none` when the declaration leaves it out).
    pub wanted: String,
    /// Its value on the existing queue (`none` when the queue has none).
    pub current: String,
}

impl Clash {
    /// Finds the clash in an error's text: RabbitMQ's and the embedded broker's
    /// `inequivalent arg 'A' for queue 'Q' in vhost 'V': received X but current is Y`,
    /// where X and Y are `'v'`, `the value 'v' of type 't'` or `none`.
    pub fn parse(text: &str) -> Option<Clash> {
        let rest = &text[text.find("inequivalent arg '")? + "inequivalent arg '".len()..];
        let (arg, rest) = rest.split_once("' for queue '")?;
        let (queue, rest) = rest.split_once("' in vhost '")?;
        let (_vhost, rest) = rest.split_once("': received ")?;
        let (wanted, current) = rest.split_once(" but current is ")?;
        Some(Clash {
            queue: queue.to_owned(),
            arg: arg.to_owned(),
            wanted: bare_value(wanted),
            current: bare_value(current),
        })
    }

    /// The clash and how to resolve it, for `warren serve` (`quorum`: whether it was
    /// asked for a quorum queue).
    pub fn advice(&self, quorum: bool) -> String {
        let Clash {
            queue,
            arg,
            wanted,
            current,
        } = self;
        let (declared, flag) = if quorum {
            ("a durable quorum queue (--quorum)", "drop --quorum")
        } else {
            (
                "the tutorial's plain queue",
                "add --quorum if it is a quorum queue",
            )
        };
        format!(
            "queue {queue} exists with {arg}={current}; this command wants {arg}={wanted} \
             ({declared}): delete the queue (e.g. `rabbitmqctl delete_queue {queue}`), \
             {flag}, or serve another queue with --queue"
        )
    }
}

/// `'v'` or `the value 'v' of type 't'` as `v`; `none` (or anything else) as it is.
fn bare_value(s: &str) -> String {
    let s = s.trim().trim_end_matches(['.', ')']);
    let s = s.strip_prefix("the value ").unwrap_or(s);
    let quoted = s
        .strip_prefix('\'')
        .and_then(|v| v.split_once('\'').map(|(v, _)| v));
    quoted.unwrap_or(s).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_answer_decides() {
        let rabbitmq = "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue \
                        'warren.quorum-check.1.2' in vhost '/'";
        assert_eq!(
            verdict(Some((406, rabbitmq.into()))),
            Some(QuorumSupport::Supported)
        );
        assert!(
            matches!(verdict(None), Some(QuorumSupport::Unsupported(why)) if why.contains("classic"))
        );
        let no_type = "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue";
        assert!(matches!(
            verdict(Some((406, no_type.into()))),
            Some(QuorumSupport::Unsupported(why)) if why.contains("x-queue-type")
        ));
        assert_eq!(verdict(Some((403, "ACCESS_REFUSED".into()))), None);
    }

    #[test]
    fn rabbitmq_clashes_parse() {
        let c = Clash::parse(
            "AMQP error: PRECONDITION_FAILED - inequivalent arg 'durable' for queue \
             'rpc_queue' in vhost '/': received 'true' but current is 'false'",
        )
        .expect("a clash");
        assert_eq!(
            c,
            Clash {
                queue: "rpc_queue".into(),
                arg: "durable".into(),
                wanted: "true".into(),
                current: "false".into(),
            }
        );
        let c = Clash::parse(
            "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the \
             value 'quorum' of type 'longstr' but current is none",
        )
        .expect("a clash");
        assert_eq!((c.wanted.as_str(), c.current.as_str()), ("quorum", "none"));
        let c = Clash::parse(
            "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received none \
             but current is the value 'quorum' of type 'longstr'",
        )
        .expect("a clash");
        assert_eq!((c.wanted.as_str(), c.current.as_str()), ("none", "quorum"));
        assert_eq!(Clash::parse("NOT_FOUND - no queue 'q' in vhost '/'"), None);
    }

    #[test]
    fn advice_names_the_clash_and_the_ways_out() {
        let c = Clash {
            queue: "rpc_queue".into(),
            arg: "x-queue-type".into(),
            wanted: "quorum".into(),
            current: "classic".into(),
        };
        let text = c.advice(true);
        assert!(
            text.starts_with(
                "queue rpc_queue exists with x-queue-type=classic; this command wants \
                 x-queue-type=quorum"
            ),
            "{text}"
        );
        assert!(text.contains("delete the queue") && text.contains("drop --quorum"));
        assert!(c.advice(false).contains("add --quorum"));
    }
}

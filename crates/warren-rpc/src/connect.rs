//! Connections: opening one within a deadline (and saying which step stalled when it
//! does not finish), trying a list of broker addresses in order, closing within a
//! bound, and the capped exponential backoff with jitter used between reconnection
//! attempts.
//!
//! Every step that waits for the peer (TCP connect, TLS, the AMQP handshake) is raced
//! against a deadline here, and a connection given up on has its socket shut down
//! ([`SocketCut`]) so that its connection task ([`crate::amqp`]) ends too.

mod cut;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{debug, warn};

pub(crate) use self::cut::SocketCut;
use crate::amqp::framing::FrameReader;
use crate::amqp::handshake::{handshake, Login, Tuned};
use crate::amqp::{Connection, FrameBuf, RawError};
use crate::error::TlsFailure;
use crate::error::{redact_url, AmqpError, ConnectStep, Error, Result};
use crate::tls::TlsConfig;
/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Largest delay between attempts.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// A backoff starting at `initial` and doubling up to `max` (jittered).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max }
    }

    /// The delay before retry number `attempt` (0-based): uniformly random in
    /// `[d/2, d]` where `d = min(max, initial * 2^attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Default time allowed to set up a connection: TCP connect, AMQP handshake and
/// channel setup together.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default heartbeat interval asked of the broker (it may choose a shorter one). A
/// connection that hears nothing from the broker for two intervals is torn down.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// Default time a polite `connection.close` may take before the socket is shut down.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a dropped connection is given to send its own `connection.close` before
/// its socket is shut down.
const DROP_GRACE: Duration = Duration::from_secs(1);

/// How to open connections.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    /// The connection name shown in the broker's UI.
    pub(crate) name: &'static str,
    /// The heartbeat interval asked for (zero: whatever the broker offers).
    pub(crate) heartbeat: Duration,
    /// TLS for `amqps://` addresses (built once; `None` when no address needs it).
    pub(crate) tls: Option<Arc<Tls>>,
}

/// A built TLS client configuration, shared by every connection attempt.
pub(crate) struct Tls {
    connector: tokio_rustls::TlsConnector,
    insecure: bool,
    external: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("insecure", &self.insecure)
            .field("external", &self.external)
            .finish()
    }
}

impl Tls {
    /// Builds the TLS setup for `urls` from `config` (the default when `None`); `None`
    /// when no address is `amqps://` and no TLS options were given.
    pub(crate) fn for_urls(
        urls: &[String],
        config: Option<&TlsConfig>,
    ) -> Result<Option<Arc<Tls>>> {
        let wanted = config.is_some() || urls.iter().any(|u| u.starts_with("amqps://"));
        if !wanted {
            return Ok(None);
        }
        let config = config.cloned().unwrap_or_default();
        Ok(Some(Arc::new(Tls {
            connector: tokio_rustls::TlsConnector::from(config.client_config()?),
            insecure: config.accepts_invalid_certs(),
            external: config.external(),
        })))
    }
}

impl Dial {
    fn heartbeat_secs(&self) -> u16 {
        if self.heartbeat.is_zero() {
            return 0;
        }
        u16::try_from(self.heartbeat.as_secs().max(1)).unwrap_or(u16::MAX)
    }
}

/// Shuts a connection's socket down when dropped, after [`DROP_GRACE`]; or at once
/// with [`CutOnDrop::cut`].
#[derive(Debug)]
pub(crate) struct CutOnDrop(SocketCut);

impl CutOnDrop {
    /// Shuts the socket down now.
    pub(crate) fn cut(&self) {
        self.0.cut();
    }
}

impl Drop for CutOnDrop {
    fn drop(&mut self) {
        self.0.cut_later(DROP_GRACE);
    }
}

/// An open AMQP connection, with the means to shut its socket down.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) connection: Connection,
    pub(crate) cut: CutOnDrop,
    /// The address (credentials removed).
    pub(crate) url: String,
}

/// Opens an AMQP connection to `url` by `deadline`, naming it for the broker's UI.
/// A TCP connect or AMQP handshake still running at the deadline fails with
/// [`Error::ConnectTimeout`] naming that step, and its socket is shut down.
pub(crate) async fn open(url: &str, deadline: Instant, dial: &Dial) -> Result<Link> {
    let shown = redact_url(url);
    let timeout = to_millis(deadline.saturating_duration_since(Instant::now()));
    let uri: AMQPUri = url.parse().map_err(|e: String| Error::Connect {
        url: shown.clone(),
        source: AmqpError::msg(format!("not an AMQP URL: {e}")),
    })?;
    let tls = match uri.scheme {
        AMQPScheme::AMQP => None,
        AMQPScheme::AMQPS => match &dial.tls {
            Some(tls) => Some(Arc::clone(tls)),
            None => Tls::for_urls(&[], Some(&TlsConfig::default()))?,
        },
    };
    let mut external = matches!(uri.query.auth_mechanism, Some(SASLMechanism::External));
    if let Some(tls) = &tls {
        if tls.insecure {
            warn!(url = %shown, "TLS certificate checks are OFF (danger_accept_invalid_certs): the broker is not authenticated");
        }
        external |= tls.external && uri.query.auth_mechanism.is_none();
    }
    let login = Login {
        user: uri.authority.userinfo.username.clone(),
        password: uri.authority.userinfo.password.clone(),
        vhost: uri.vhost.clone(),
        external,
        heartbeat: uri.query.heartbeat.unwrap_or_else(|| dial.heartbeat_secs()),
        frame_max: uri.query.frame_max.unwrap_or(0),
        channel_max: uri.query.channel_max.unwrap_or(0),
        name: dial.name.to_owned(),
    };
    let stalled = |step| Error::ConnectTimeout {
        url: shown.clone(),
        step,
        timeout,
    };
    let failed = |e: RawError| Error::Connect {
        url: shown.clone(),
        source: AmqpError::from_raw(e),
    };
    let cut = CutOnDrop(SocketCut::default());
    let host = uri.authority.host.as_str();
    let tcp = match tokio::time::timeout_at(
        deadline,
        tokio::net::TcpStream::connect((host, uri.authority.port)),
    )
    .await
    {
        Err(_) => return Err(stalled(ConnectStep::TcpConnect)),
        Ok(Err(e)) => return Err(failed(e.into())),
        Ok(Ok(tcp)) => tcp,
    };
    tcp.set_nodelay(true).map_err(|e| failed(e.into()))?;
    cut.0.arm(&tcp).map_err(|e| failed(e.into()))?;
    let handshake_failed = |e: RawError| match e {
        RawError::Closed {
            code: 403, text, ..
        } => Error::AccessRefused {
            url: shown.clone(),
            user: login.user.clone(),
            reply_text: text,
        },
        other => failed(other),
    };
    let connection = match tls {
        None => {
            let mut tcp = tcp;
            let (reader, out, tuned) =
                shake(&mut tcp, &login, deadline)
                    .await
                    .map_err(|e| match e {
                        ShakeError::Stalled => stalled(ConnectStep::AmqpHandshake),
                        ShakeError::Failed { error, .. } => handshake_failed(error),
                    })?;
            Connection::start(tcp, reader, out, tuned)
        }
        Some(tls) => {
            let name = ServerName::try_from(host.to_owned()).map_err(|e| Error::Tls {
                url: shown.clone(),
                failure: TlsFailure::Handshake(format!(
                    "`{host}` is not a valid TLS server name: {e}"
                )),
            })?;
            let mut stream =
                match tokio::time::timeout_at(deadline, tls.connector.connect(name, tcp)).await {
                    Err(_) => return Err(stalled(ConnectStep::TcpConnect)),
                    Ok(Err(e)) => {
                        return Err(Error::Tls {
                            url: shown.clone(),
                            failure: TlsFailure::from_io(&e),
                        })
                    }
                    Ok(Ok(stream)) => stream,
                };
            // TLS 1.3 finishes the client's side of the handshake before the broker has
            // checked the client certificate: its refusal is an alert read here.
            let (reader, out, tuned) =
                shake(&mut stream, &login, deadline)
                    .await
                    .map_err(|e| match e {
                        ShakeError::Stalled => stalled(ConnectStep::AmqpHandshake),
                        ShakeError::Failed { error, heard } => {
                            match TlsFailure::after_handshake(&error, heard) {
                                Some(failure) => Error::Tls {
                                    url: shown.clone(),
                                    failure,
                                },
                                None => handshake_failed(error),
                            }
                        }
                    })?;
            Connection::start(stream, reader, out, tuned)
        }
    };
    Ok(Link {
        connection,
        cut,
        url: shown,
    })
}

/// How the AMQP handshake failed.
enum ShakeError {
    /// It ran out of time.
    Stalled,
    /// It failed; `heard` when the broker had sent something first.
    Failed { error: RawError, heard: bool },
}

/// The AMQP handshake on `stream` by `deadline`.
async fn shake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    login: &Login,
    deadline: Instant,
) -> std::result::Result<(FrameReader, FrameBuf, Tuned), ShakeError> {
    let mut reader = FrameReader::new();
    let mut out = FrameBuf::new(4096);
    match tokio::time::timeout_at(deadline, handshake(stream, &mut reader, &mut out, login)).await {
        Err(_) => Err(ShakeError::Stalled),
        Ok(Err(error)) => Err(ShakeError::Failed {
            error,
            heard: reader.heard_from_peer(),
        }),
        Ok(Ok(tuned)) => Ok((reader, out, tuned)),
    }
}

/// `d` rounded to whole milliseconds, for messages.
fn to_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX))
}

/// Connects to the first of `urls` that answers by `deadline`. Each address gets an
/// equal share of the time left, so one that stalls cannot starve the ones after it.
/// Returns the error of the last one tried when none answers.
pub(crate) async fn open_any(urls: &[String], deadline: Instant, dial: &Dial) -> Result<Link> {
    let mut last = Error::InvalidArgument("no broker address given".to_owned());
    for (i, url) in urls.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(urls.len() - i).unwrap_or(u32::MAX);
        match open(url, Instant::now() + share, dial).await {
            Ok(link) => return Ok(link),
            Err(e) => {
                debug!(url = redact_url(url), error = %e, "broker did not answer");
                last = e;
            }
        }
    }
    Err(last)
}

/// Runs `setup` (opening channels, declaring the consumer) on `link` by `deadline`.
/// When it fails or runs out of time the connection is given up: its socket is shut
/// down. `budget` is the whole connect timeout, for the error message.
pub(crate) async fn set_up<T>(
    link: &Link,
    deadline: Instant,
    budget: Duration,
    setup: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout_at(deadline, setup).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => {
            link.cut.cut();
            Err(e)
        }
        Err(_) => {
            link.cut.cut();
            Err(Error::ConnectTimeout {
                url: link.url.clone(),
                step: ConnectStep::ChannelSetup,
                timeout: to_millis(budget),
            })
        }
    }
}

/// Closes `connection` politely (`connection.close`, waiting for `close-ok`) within
/// `timeout`, then shuts its socket down whatever happened.
pub(crate) async fn close(
    connection: &Connection,
    cut: &CutOnDrop,
    timeout: Duration,
    reason: &str,
) -> Result<()> {
    let outcome = tokio::time::timeout(timeout, connection.close(200, reason)).await;
    cut.cut();
    match outcome {
        Ok(Ok(())) => Ok(()),
        // Already gone: nothing left to close.
        Ok(Err(_)) if connection.is_closed() => Ok(()),
        Ok(Err(e)) => Err(Error::amqp(e)),
        Err(_) => Err(Error::Unavailable {
            reason: format!(
                "the broker did not answer connection.close within {timeout:?}; the socket was shut down"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff::default();
        for attempt in 0..40 {
            let d = b.delay(attempt);
            let ceiling = (b.initial * 2u32.saturating_pow(attempt.min(16))).min(b.max);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
        assert!(b.delay(30) <= b.max);
        let distinct: std::collections::HashSet<_> = (0..20).map(|_| b.delay(5)).collect();
        assert!(distinct.len() > 1, "jitter varies the delay");
    }

    const DIAL: Dial = Dial {
        name: "t",
        heartbeat: Duration::from_secs(10),
        tls: None,
    };

    fn soon(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[tokio::test]
    async fn open_any_reports_the_last_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let urls = vec![format!("amqp://u:secret@127.0.0.1:{port}/%2f")];
        let err = open_any(&urls, soon(2), &DIAL).await.unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err}");
        assert!(!err.to_string().contains("secret"));
        let err = open_any(&[], soon(1), &DIAL).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        let err = open_any(&["not a url".to_owned()], soon(1), &DIAL)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err}");
    }

    #[test]
    fn heartbeat_is_whole_seconds_in_range() {
        let secs = |heartbeat| {
            Dial {
                name: "t",
                heartbeat,
                tls: None,
            }
            .heartbeat_secs()
        };
        assert_eq!(secs(Duration::ZERO), 0);
        assert_eq!(secs(Duration::from_millis(300)), 1);
        assert_eq!(secs(Duration::from_secs(10)), 10);
        assert_eq!(secs(Duration::from_secs(1 << 20)), u16::MAX);
    }
}

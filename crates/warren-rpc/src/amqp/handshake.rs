//! Opening a connection on a socket that is already up (plain TCP or TLS): the
//! protocol header, `connection.start` / `start-ok` (PLAIN or EXTERNAL, with the
//! capabilities that make RabbitMQ send `connection.blocked`, consumer cancel
//! notifications and a `connection.close` for a refused login), `tune` / `tune-ok`
//! and `open` / `open-ok`.

use amq_protocol::protocol::connection::{self, Open, StartOk, TuneOk};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::{AMQPValue, FieldTable};
use tokio::io::{AsyncRead, AsyncWrite};

use super::content::{Assembler, Event};
use super::framing::FrameReader;
use super::writer::FrameBuf;
use super::RawError;

/// The AMQP 0-9-1 protocol header.
const PROTOCOL_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
/// The largest frame this client asks for.
const FRAME_MAX: u32 = 128 * 1024;

/// Who logs in, where, and what the client asks for.
#[derive(Debug, Clone)]
pub struct Login {
    /// The user (PLAIN).
    pub user: String,
    /// The password (PLAIN).
    pub password: String,
    /// The virtual host.
    pub vhost: String,
    /// SASL EXTERNAL instead of PLAIN (the user comes from the client certificate).
    pub external: bool,
    /// The heartbeat interval asked for, seconds (0: whatever the broker offers).
    pub heartbeat: u16,
    /// A `frame_max` asked for (0: this client's default).
    pub frame_max: u32,
    /// A `channel_max` asked for (0: the broker's).
    pub channel_max: u16,
    /// The connection name shown in the broker's UI.
    pub name: String,
}

/// What the peers agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuned {
    /// The highest channel number.
    pub channel_max: u16,
    /// The largest frame.
    pub frame_max: u32,
    /// The heartbeat interval, seconds (0: none).
    pub heartbeat: u16,
}

/// Either side's value when the other's is 0 ("no limit"), else the smaller.
fn agree<T: Ord + Default + Copy>(ours: T, theirs: T) -> T {
    let zero = T::default();
    match (ours == zero, theirs == zero) {
        (true, _) => theirs,
        (_, true) => ours,
        _ => ours.min(theirs),
    }
}

fn client_properties(name: &str) -> FieldTable {
    let mut capabilities = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "consumer_cancel_notify",
        "connection.blocked",
        "basic.nack",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        capabilities.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("product".into(), AMQPValue::LongString("warren".into()));
    props.insert(
        "version".into(),
        AMQPValue::LongString(env!("CARGO_PKG_VERSION").into()),
    );
    props.insert("connection_name".into(), AMQPValue::LongString(name.into()));
    props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    props
}

/// Runs the handshake on `stream`; leaves `out` tuned to the agreed `frame_max`.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    reader: &mut FrameReader,
    out: &mut FrameBuf,
    login: &Login,
) -> Result<Tuned, RawError> {
    let mut asm = Assembler::new();
    out.raw(PROTOCOL_HEADER);
    out.flush(stream).await?;
    let start = match method(stream, reader, &mut asm).await? {
        AMQPClass::Connection(connection::AMQPMethod::Start(s)) => s,
        other => return Err(unexpected("connection.start", &other)),
    };
    let (mechanism, response) = if login.external {
        ("EXTERNAL", String::new())
    } else {
        ("PLAIN", format!("\0{}\0{}", login.user, login.password))
    };
    if !start
        .mechanisms
        .to_string()
        .split_whitespace()
        .any(|m| m == mechanism)
    {
        return Err(RawError::Closed {
            what: "the connection",
            code: 403,
            text: format!(
                "ACCESS_REFUSED - the broker does not offer the {mechanism} mechanism (it offers {})",
                start.mechanisms
            ),
        });
    }
    let start_ok = StartOk {
        client_properties: client_properties(&login.name),
        mechanism: mechanism.into(),
        response: response.into(),
        locale: "en_US".into(),
    };
    out.method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)),
    )?;
    out.flush(stream).await?;
    let tune = match method(stream, reader, &mut asm).await? {
        AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
        other => return Err(unexpected("connection.tune", &other)),
    };
    let ours = match login.frame_max {
        0 => FRAME_MAX,
        n => n,
    };
    let tuned = Tuned {
        channel_max: agree(login.channel_max, tune.channel_max),
        frame_max: agree(ours, tune.frame_max),
        heartbeat: agree(login.heartbeat, tune.heartbeat),
    };
    let tune_ok = TuneOk {
        channel_max: tuned.channel_max,
        frame_max: tuned.frame_max,
        heartbeat: tuned.heartbeat,
    };
    out.method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)),
    )?;
    out.set_frame_max(tuned.frame_max);
    let open = Open {
        virtual_host: login.vhost.as_str().into(),
    };
    out.method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::Open(open)),
    )?;
    out.flush(stream).await?;
    match method(stream, reader, &mut asm).await? {
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => Ok(tuned),
        other => Err(unexpected("connection.open-ok", &other)),
    }
}

/// The next method on channel 0, turning a `connection.close` into an error.
async fn method<S: AsyncRead + Unpin>(
    stream: &mut S,
    reader: &mut FrameReader,
    asm: &mut Assembler,
) -> Result<AMQPClass, RawError> {
    loop {
        let frame = reader.read_frame(stream).await?;
        match asm.push(frame)? {
            Some(Event::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => {
                return Err(RawError::Closed {
                    what: "the connection",
                    code: c.reply_code,
                    text: c.reply_text.to_string(),
                })
            }
            Some(Event::Method(0, class)) => return Ok(class),
            Some(Event::Heartbeat) | None => {}
            Some(other) => {
                return Err(RawError::Unexpected(format!(
                    "{other:?} during the handshake"
                )))
            }
        }
    }
}

/// An `Unexpected` error naming what was awaited.
pub(crate) fn unexpected(wanted: &str, got: &AMQPClass) -> RawError {
    RawError::Unexpected(format!("wanted {wanted}, got {got:?}"))
}

#[cfg(test)]
mod tests {
    use super::agree;

    #[test]
    fn zero_means_the_other_side_decides() {
        assert_eq!(agree(0u16, 60), 60);
        assert_eq!(agree(10u16, 0), 10);
        assert_eq!(agree(10u16, 60), 10);
        assert_eq!(agree(0u32, 0), 0);
    }
}

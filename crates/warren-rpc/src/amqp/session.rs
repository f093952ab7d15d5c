//! A connection driven by its caller, for `warren bench`'s own loops (`--raw`,
//! `--client raw`): the handshake, the synchronous methods a bench needs before its
//! load loop, and event reads for the loop itself. Warren's client and server use
//! the connection task ([`super::conn`]) instead.

use std::time::Duration;

use amq_protocol::protocol::basic::{self, Consume, Qos};
use amq_protocol::protocol::channel::{self, Open as ChannelOpen};
use amq_protocol::protocol::confirm::{self, Select};
use amq_protocol::protocol::connection::{self, Close};
use amq_protocol::protocol::queue::{self, Declare, Delete};
use amq_protocol::protocol::AMQPClass;
use amq_protocol::uri::AMQPUri;
use tokio::net::TcpStream;

use super::framing::FrameReader;
use super::handshake::{handshake, unexpected, Login};
use super::{Assembler, Event, FrameBuf, RawError};

/// How long any one setup step may take.
const STEP: Duration = Duration::from_secs(10);

/// An open connection and its buffers.
#[derive(Debug)]
pub struct Session {
    /// The socket (a bench's load loop reads and writes it directly).
    pub stream: TcpStream,
    /// The read side's frames.
    pub reader: FrameReader,
    /// The write side's pending frames.
    pub out: FrameBuf,
    /// Content being put back together.
    pub asm: Assembler,
}

impl Session {
    /// Connects to `url` (`amqp://user:pass@host:port/vhost`) and opens the connection,
    /// heartbeats off.
    pub async fn connect(url: &str) -> Result<Self, RawError> {
        let uri: AMQPUri = url.parse().map_err(RawError::Url)?;
        let auth = &uri.authority;
        let stream =
            tokio::time::timeout(STEP, TcpStream::connect((auth.host.as_str(), auth.port)))
                .await
                .map_err(|_| RawError::Timeout("the TCP connection"))??;
        stream.set_nodelay(true)?;
        let mut s = Self {
            stream,
            reader: FrameReader::new(),
            out: FrameBuf::new(4096),
            asm: Assembler::new(),
        };
        let login = Login {
            user: auth.userinfo.username.clone(),
            password: auth.userinfo.password.clone(),
            vhost: uri.vhost.clone(),
            external: false,
            heartbeat: 0,
            frame_max: 0,
            channel_max: 0,
            name: "warren-bench".to_owned(),
        };
        tokio::time::timeout(
            STEP,
            handshake(&mut s.stream, &mut s.reader, &mut s.out, &login),
        )
        .await
        .map_err(|_| RawError::Timeout("the AMQP handshake"))??;
        Ok(s)
    }

    /// Opens channel `ch`.
    pub async fn channel_open(&mut self, ch: u16) -> Result<(), RawError> {
        let open = AMQPClass::Channel(channel::AMQPMethod::Open(ChannelOpen {}));
        match self.call(ch, open).await? {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => Ok(()),
            other => Err(unexpected("channel.open-ok", &other)),
        }
    }

    /// Sets the channel's prefetch count.
    pub async fn qos(&mut self, ch: u16, prefetch_count: u16) -> Result<(), RawError> {
        let qos = Qos {
            prefetch_count,
            global: false,
        };
        match self
            .call(ch, AMQPClass::Basic(basic::AMQPMethod::Qos(qos)))
            .await?
        {
            AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => Ok(()),
            other => Err(unexpected("basic.qos-ok", &other)),
        }
    }

    /// Declares a queue (auto-delete if asked) and returns its name.
    pub async fn queue_declare(
        &mut self,
        ch: u16,
        name: &str,
        auto_delete: bool,
    ) -> Result<String, RawError> {
        let declare = Declare {
            queue: name.into(),
            auto_delete,
            ..Declare::default()
        };
        match self
            .call(ch, AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))
            .await?
        {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.queue.to_string()),
            other => Err(unexpected("queue.declare-ok", &other)),
        }
    }

    /// Deletes a queue; returns how many messages it held.
    pub async fn queue_delete(&mut self, ch: u16, name: &str) -> Result<u32, RawError> {
        let delete = Delete {
            queue: name.into(),
            ..Delete::default()
        };
        match self
            .call(ch, AMQPClass::Queue(queue::AMQPMethod::Delete(delete)))
            .await?
        {
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)) => Ok(ok.message_count),
            other => Err(unexpected("queue.delete-ok", &other)),
        }
    }

    /// Puts the channel in confirm mode.
    pub async fn confirm_select(&mut self, ch: u16) -> Result<(), RawError> {
        let select = AMQPClass::Confirm(confirm::AMQPMethod::Select(Select { nowait: false }));
        match self.call(ch, select).await? {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => Ok(()),
            other => Err(unexpected("confirm.select-ok", &other)),
        }
    }

    /// Starts a consumer on `queue`; returns its tag.
    pub async fn consume(
        &mut self,
        ch: u16,
        queue: &str,
        no_ack: bool,
    ) -> Result<String, RawError> {
        let consume = Consume {
            queue: queue.into(),
            no_ack,
            ..Consume::default()
        };
        match self
            .call(ch, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))
            .await?
        {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)) => Ok(ok.consumer_tag.to_string()),
            other => Err(unexpected("basic.consume-ok", &other)),
        }
    }

    /// Closes the connection and waits (briefly) for `close-ok`.
    pub async fn close(mut self) -> Result<(), RawError> {
        let close = Close {
            reply_code: 200,
            reply_text: "bench done".into(),
            class_id: 0,
            method_id: 0,
        };
        let done = async {
            self.send(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Close(close)),
            )
            .await?;
            loop {
                if let Event::Method(0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) =
                    self.next_event().await?
                {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(2), done)
            .await
            .map_err(|_| RawError::Timeout("connection.close-ok"))?
    }

    /// The next event from what is already buffered, without reading.
    pub fn buffered_event(&mut self) -> Result<Option<Event>, RawError> {
        while let Some(frame) = self.reader.next_frame()? {
            if let Some(event) = self.asm.push(frame)? {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Reads once from the socket into the frame buffer.
    pub async fn fill(&mut self) -> Result<(), RawError> {
        self.reader.fill(&mut self.stream).await
    }

    /// The next event, reading as needed.
    pub async fn next_event(&mut self) -> Result<Event, RawError> {
        loop {
            if let Some(event) = self.buffered_event()? {
                return Ok(event);
            }
            self.fill().await?;
        }
    }

    /// Writes everything pending.
    pub async fn flush(&mut self) -> Result<(), RawError> {
        self.out.flush(&mut self.stream).await
    }

    async fn send(&mut self, ch: u16, class: AMQPClass) -> Result<(), RawError> {
        self.out.method(ch, &class)?;
        self.flush().await
    }

    /// Sends a synchronous method and waits for the reply on the same channel.
    async fn call(&mut self, ch: u16, class: AMQPClass) -> Result<AMQPClass, RawError> {
        self.send(ch, class).await?;
        tokio::time::timeout(STEP, self.method(ch))
            .await
            .map_err(|_| RawError::Timeout("a reply to a setup method"))?
    }

    /// The next method on `ch`, turning a close from the broker into an error.
    async fn method(&mut self, ch: u16) -> Result<AMQPClass, RawError> {
        loop {
            let (channel, class) = match self.next_event().await? {
                Event::Method(channel, class) => (channel, class),
                Event::Heartbeat => continue,
                other => return Err(RawError::Unexpected(format!("{other:?} during setup"))),
            };
            match class {
                AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                    return Err(RawError::Closed {
                        what: "the connection",
                        code: c.reply_code,
                        text: c.reply_text.to_string(),
                    })
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
                    return Err(RawError::Closed {
                        what: "a channel",
                        code: c.reply_code,
                        text: c.reply_text.to_string(),
                    })
                }
                class if channel == ch => return Ok(class),
                _ => continue,
            }
        }
    }
}

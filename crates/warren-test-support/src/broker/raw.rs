//! A minimal raw AMQP client for protocol-level tests (uses amq-protocol).

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{FieldTable, LongString};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Raw {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

/// queue.declare of `name` with every flag off and no arguments; change what a test
/// needs with struct update syntax.
pub fn queue_declare(name: &str) -> queue::Declare {
    queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }
}

/// A method frame's payload: queue.declare.
pub fn declare(d: queue::Declare) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(d))
}

/// The encoded frames of one basic.publish of `body` to the default exchange with
/// `routing_key` on channel `ch` (method, header, one body frame).
pub fn publish(ch: u16, routing_key: &str, body: &[u8]) -> Vec<u8> {
    let mut frames = encode(&AMQPFrame::Method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        })),
    ));
    frames.extend(encode(&AMQPFrame::Header(
        ch,
        AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: Default::default(),
        },
    )));
    frames.extend(encode(&AMQPFrame::Body(ch, body.to_vec())));
    frames
}

pub fn encode(frame: &AMQPFrame) -> Vec<u8> {
    let ctx = WriteContext::from(Vec::new());
    gen_frame(frame)(ctx).unwrap().into_inner().0
}

impl Raw {
    pub async fn open(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// Connect and complete the handshake with the given frame_max.
    pub async fn connect(addr: SocketAddr, frame_max: u32) -> Raw {
        Raw::connect_hb(addr, frame_max, 0).await
    }

    /// Connect with a heartbeat interval (seconds).
    pub async fn connect_hb(addr: SocketAddr, frame_max: u32, heartbeat: u16) -> Raw {
        let mut r = Raw::open(addr).await;
        r.send_bytes(b"AMQP\x00\x00\x09\x01").await;
        match r.recv().await {
            Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(_)))) => {
            }
            other => panic!("expected start, got {other:?}"),
        }
        r.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from("\0guest\0guest"),
                locale: "en_US".into(),
            })),
        )
        .await;
        match r.recv().await {
            Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))) => {}
            other => panic!("expected tune, got {other:?}"),
        }
        r.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: 16,
                frame_max,
                heartbeat,
            })),
        )
        .await;
        r.method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        )
        .await;
        match r.recv().await {
            Some(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)),
            )) => {}
            other => panic!("expected open-ok, got {other:?}"),
        }
        r
    }

    pub async fn open_channel(&mut self, id: u16) {
        self.method(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
        match self.recv().await {
            Some(AMQPFrame::Method(c, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))))
                if c == id => {}
            other => panic!("expected channel.open-ok, got {other:?}"),
        }
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        let _ = self.stream.write_all(b).await;
    }

    pub async fn method(&mut self, ch: u16, class: AMQPClass) {
        let b = encode(&AMQPFrame::Method(ch, class));
        self.send_bytes(&b).await;
    }

    /// Next frame with its raw bytes, or None on EOF / 3 s timeout.
    pub async fn recv_raw(&mut self) -> Option<(AMQPFrame, Vec<u8>)> {
        loop {
            if let Ok((rest, frame)) = parse_frame(&self.buf[..]) {
                let used = self.buf.len() - rest.len();
                let raw: Vec<u8> = self.buf.drain(..used).collect();
                return Some((frame, raw));
            }
            let mut tmp = vec![0u8; 65536];
            match tokio::time::timeout(Duration::from_secs(3), self.stream.read(&mut tmp)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    pub async fn recv(&mut self) -> Option<AMQPFrame> {
        self.recv_raw().await.map(|(f, _)| f)
    }

    /// Read raw bytes until EOF or timeout.
    pub async fn read_all(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let mut tmp = vec![0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(3), self.stream.read(&mut tmp)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return out,
                Ok(Ok(n)) => out.extend_from_slice(&tmp[..n]),
            }
        }
    }

    /// Wait until the peer closes the socket; returns true if it did.
    pub async fn closed(&mut self) -> bool {
        let mut tmp = vec![0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut tmp)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Wait for a connection.close; returns its reply code.
    pub async fn expect_connection_close(&mut self) -> u16 {
        loop {
            match self.recv().await {
                Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                )) => return c.reply_code,
                Some(_) => continue,
                None => panic!("no connection.close received"),
            }
        }
    }
}

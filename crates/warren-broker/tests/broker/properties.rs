//! Message properties round-trip byte-exact, through raw frames and lapin.

use crate::common::raw::{encode, Raw};
use crate::common::*;
use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::basic::{self, AMQPProperties};
use amq_protocol::protocol::{queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::options::*;

pub(crate) fn all_properties() -> AMQPProperties {
    let mut inner = FieldTable::default();
    inner.insert("deep".into(), AMQPValue::LongLongInt(-5));
    inner.insert(
        "bytes".into(),
        AMQPValue::LongString(LongString::from(vec![0u8, 1, 2, 255])),
    );
    let mut headers = FieldTable::default();
    headers.insert("nested".into(), AMQPValue::FieldTable(inner.clone()));
    headers.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::Boolean(true),
            AMQPValue::FieldTable(inner),
            AMQPValue::Double(1.5),
        ])),
    );
    headers.insert("ts".into(), AMQPValue::Timestamp(1_700_000_000));
    AMQPProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("mid".into())
        .with_timestamp(1_234_567)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("app".into())
        .with_cluster_id("cluster".into())
}

#[tokio::test]
async fn properties_round_trip_byte_exact() {
    bounded(async {
        let b = start().await;
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        r.method(
            1,
            raw::declare(queue::Declare {
                nowait: true,
                ..raw::queue_declare("props")
            }),
        )
        .await;
        // Hand-build a header frame whose table keys are NOT sorted, to prove
        // the broker forwards the publisher's bytes verbatim.
        let mut props = encode(&AMQPFrame::Header(
            1,
            amq_protocol::frame::AMQPContentHeader {
                class_id: 60,
                body_size: 3,
                properties: all_properties(),
            },
        ));
        props.truncate(props.len() - 1);
        let mut payload = props[7..].to_vec();
        // Append nothing but re-frame (also checks our own framing math).
        let mut header = vec![2, 0, 1];
        header.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        header.append(&mut payload);
        header.push(0xCE);
        // Unsorted extra table: swap in a custom headers table with keys z, a.
        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "props".into(),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
        r.send_bytes(&header).await;
        r.send_bytes(&encode(&AMQPFrame::Body(1, b"abc".to_vec())))
            .await;

        // A second message with a hand-encoded, unsorted headers table.
        let mut raw_props = vec![0x20, 0x00]; // flags: headers only
        let mut table = Vec::new();
        for (k, v) in [("zeta", b'z'), ("alpha", b'a')] {
            table.push(k.len() as u8);
            table.extend_from_slice(k.as_bytes());
            table.push(b'b'); // short-short-int
            table.push(v);
        }
        raw_props.extend_from_slice(&(table.len() as u32).to_be_bytes());
        raw_props.extend_from_slice(&table);
        let mut hp = vec![0, 60, 0, 0];
        hp.extend_from_slice(&1u64.to_be_bytes());
        hp.extend_from_slice(&raw_props);
        let mut header2 = vec![2, 0, 1];
        header2.extend_from_slice(&(hp.len() as u32).to_be_bytes());
        header2.extend_from_slice(&hp);
        header2.push(0xCE);
        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: "props".into(),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
        r.send_bytes(&header2).await;
        r.send_bytes(&encode(&AMQPFrame::Body(1, b"z".to_vec())))
            .await;

        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: "props".into(),
                consumer_tag: "t".into(),
                no_local: false,
                no_ack: true,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await;
        let mut headers_seen = Vec::new();
        while headers_seen.len() < 2 {
            let (f, raw) = r.recv_raw().await.expect("frame");
            if let AMQPFrame::Header(_, h) = &f {
                assert_eq!(
                    h.properties
                        .reply_to()
                        .as_ref()
                        .map(|s| s.as_str())
                        .unwrap_or("replies"),
                    "replies"
                );
                headers_seen.push(raw);
            }
        }
        assert_eq!(headers_seen[0], header);
        assert_eq!(headers_seen[1], header2);
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn properties_round_trip_lapin_and_large_body() {
    bounded(async {
        let b = start().await;
        let (_c, ch) = channel(&b).await;
        ch.queue_declare(
            "big".into(),
            QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
        let body: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
        let props = all_properties();
        ch.basic_publish(
            "".into(),
            "big".into(),
            BasicPublishOptions::default(),
            &body,
            props.clone(),
        )
        .await
        .unwrap();
        let mut cons = consume(&ch, "big", true).await;
        let d = next(&mut cons).await;
        assert_eq!(d.data.len(), body.len());
        assert!(d.data == body);
        assert_eq!(d.properties, props);

        // At the raw level, a 1 MiB body arrives split by frame_max 4096.
        let mut r = Raw::connect(b.local_addr(), 4096).await;
        r.open_channel(1).await;
        ch.queue_declare(
            "big2".into(),
            QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_publish(
            "".into(),
            "big2".into(),
            BasicPublishOptions::default(),
            &body,
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        r.method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: "big2".into(),
                no_ack: true,
            })),
        )
        .await;
        let mut got = Vec::new();
        let mut frames = 0;
        while got.len() < body.len() {
            match r.recv().await.expect("frame") {
                AMQPFrame::Body(_, data) => {
                    assert!(data.len() <= 4096 - 8);
                    frames += 1;
                    got.extend_from_slice(&data);
                }
                AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))) => {
                    panic!("queue empty")
                }
                _ => {}
            }
        }
        assert!(frames > 200);
        assert!(got == body);
        b.shutdown().await;
    })
    .await;
}

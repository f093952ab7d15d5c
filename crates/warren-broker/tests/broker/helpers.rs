//! Helpers the routing and queue tests share.

use crate::common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;

pub(crate) async fn bind_new_queue(
    ch: &lapin::Channel,
    exchange: &str,
    keys: &[&str],
    args: FieldTable,
) -> String {
    let q = server_named_queue(ch).await;
    for k in keys {
        ch.queue_bind(
            q.as_str().into(),
            exchange.into(),
            (*k).into(),
            QueueBindOptions::default(),
            args.clone(),
        )
        .await
        .unwrap();
    }
    q
}

pub(crate) async fn publish(ch: &lapin::Channel, exchange: &str, key: &str, body: &str) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    )
    .await
    .unwrap();
}

pub(crate) async fn drain(ch: &lapin::Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(q.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push(String::from_utf8(m.delivery.data).unwrap());
    }
    out
}

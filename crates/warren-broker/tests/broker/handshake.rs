//! Connection handshake: login, vhost, close.

use crate::common::*;

#[tokio::test]
async fn handshake_and_close() {
    bounded(async {
        let b = start().await;
        let c = connect(&b).await;
        let ch = c.create_channel().await.unwrap();
        ch.close(200, "bye".into()).await.unwrap();
        c.close(200, "bye".into()).await.unwrap();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn wrong_credentials_refused() {
    bounded(async {
        let b = start().await;
        let url = b.amqp_url().replace("guest:guest", "guest:nope");
        let r = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await;
        assert!(r.is_err());
        // The broker still serves others.
        let c = connect(&b).await;
        c.create_channel().await.unwrap();
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_vhost_refused() {
    bounded(async {
        let b = start().await;
        let url = b.amqp_url().replace("%2f", "nope");
        let r = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await;
        assert!(r.is_err());
        b.shutdown().await;
    })
    .await;
}

//! The RPC suite: every behaviour of client and server, on each broker target.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{unique, Target};
use futures_util::future::join_all;
use warren_rpc::{
    services::fib, CallOptions, Code, Error, HeaderValue, Headers, ReplyMode, Request, Response,
    RpcClient, RpcServer, Status,
};

async fn fib_server(t: &Target, queue: &str) -> warren_rpc::ServerHandle {
    RpcServer::new()
        .route(queue, fib::handle)
        .start(&t.url)
        .await
        .expect("server starts")
}

async fn fib_answers_exactly(t: Target) {
    let q = t.queue("fib");
    let server = fib_server(&t, &q).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    assert_eq!(
        client.call(&q, "30").await.unwrap().text().unwrap(),
        "832040"
    );
    assert_eq!(client.call(&q, "0").await.unwrap().text().unwrap(), "0");
    let big = client.call(&q, "1000").await.unwrap();
    assert_eq!(big.text().unwrap().len(), 209);
    assert_eq!(big.content_type.as_deref(), Some("text/plain"));
    server.shutdown().await.unwrap();
}

async fn two_hundred_calls_at_once(t: Target) {
    let q = t.queue("fib");
    let server = fib_server(&t, &q).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    let calls = (0..200u64).map(|i| {
        let client = client.clone();
        let q = q.clone();
        async move { (i, client.call(&q, (i % 120).to_string()).await) }
    });
    let results = join_all(calls).await;
    for (i, r) in results {
        let expected = fib::fib(i % 120).to_string();
        assert_eq!(r.unwrap().text().unwrap(), expected, "call {i}");
    }
    assert_eq!(client.in_flight(), 0, "no pending entry left behind");
    server.shutdown().await.unwrap();
}

async fn two_workers_share_a_queue(t: Target) {
    let q = t.queue("shared");
    let start = |name: &'static str| {
        RpcServer::new()
            .concurrency(1)
            .route(q.as_str(), move |_req: Request| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Response::text(name))
            })
            .start(&t.url)
    };
    let a = start("a").await.unwrap();
    let b = start("b").await.unwrap();
    let client = RpcClient::connect(&t.url).await.unwrap();
    let replies = join_all((0..20).map(|_| client.call(&q, ""))).await;
    let mut seen = std::collections::HashMap::new();
    for r in replies {
        *seen
            .entry(r.unwrap().text().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.values().sum::<i32>(), 20);
    assert!(
        seen.contains_key("a") && seen.contains_key("b"),
        "both workers served: {seen:?}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

async fn deadline_expires(t: Target) {
    let q = t.queue("slow");
    let server = RpcServer::new()
        .route(q.as_str(), |_req: Request| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(Response::text("late"))
        })
        .start(&t.url)
        .await
        .unwrap();
    let client = RpcClient::connect(&t.url).await.unwrap();
    let started = Instant::now();
    let err = client
        .call_with(
            &q,
            "x",
            CallOptions::new().timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(client.in_flight(), 0);
    server.shutdown().await.unwrap();
}

async fn no_route_fails_fast(t: Target) {
    let client = RpcClient::connect(&t.url).await.unwrap();
    let started = Instant::now();
    let err = client.call(&unique("nobody"), "1").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoRoute {
                reply_code: 312,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.in_flight(), 0);
    // The client stays usable after a returned call.
    let q = t.queue("fib");
    let server = fib_server(&t, &q).await;
    assert_eq!(client.call(&q, "10").await.unwrap().text().unwrap(), "55");
    server.shutdown().await.unwrap();
}

async fn remote_errors_are_typed(t: Target) {
    let q = t.queue("err");
    let server = RpcServer::new()
        .route(q.as_str(), |req: Request| async move {
            match req.body.as_slice() {
                b"panic" => panic!("boom"),
                b"missing" => Err(Status::not_found("no such thing")),
                _ => Ok(Response::text("fine")),
            }
        })
        .start(&t.url)
        .await
        .unwrap();
    let client = RpcClient::connect(&t.url).await.unwrap();
    match client.call(&q, "missing").await {
        Err(Error::Remote(s)) => {
            assert_eq!(s.code(), Code::NotFound);
            assert_eq!(s.message(), "no such thing");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    match client.call(&q, "panic").await {
        Err(Error::Remote(s)) => {
            assert_eq!(s.code(), Code::Internal);
            assert!(s.message().contains("boom"), "{}", s.message());
        }
        other => panic!("expected internal, got {other:?}"),
    }
    // The worker keeps going after a panic.
    assert_eq!(client.call(&q, "ok").await.unwrap().text().unwrap(), "fine");
    server.shutdown().await.unwrap();
}

async fn bad_input_is_rejected_not_looped(t: Target) {
    let q = t.queue("fib");
    let server = fib_server(&t, &q).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    for bad in ["abc", "-1", "", "100001", "1e3"] {
        match client.call(&q, bad).await {
            Err(Error::Remote(s)) => {
                assert_eq!(s.code(), Code::InvalidArgument, "{bad:?}");
                assert!(s.message().contains("0 to 100000"), "{}", s.message());
            }
            other => panic!("{bad:?}: expected invalid_argument, got {other:?}"),
        }
    }
    assert_eq!(
        client.call(&q, "30").await.unwrap().text().unwrap(),
        "832040"
    );
    server.shutdown().await.unwrap();
}

async fn shutdown_drains_started_calls(t: Target) {
    let q = t.queue("drain");
    let started = Arc::new(AtomicUsize::new(0));
    let s2 = Arc::clone(&started);
    let server = RpcServer::new()
        .concurrency(8)
        .route(q.as_str(), move |req: Request| {
            let started = Arc::clone(&s2);
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(Response::bytes(req.body))
            }
        })
        .start(&t.url)
        .await
        .unwrap();
    let client = RpcClient::connect(&t.url).await.unwrap();
    let calls = tokio::spawn({
        let client = client.clone();
        let q = q.clone();
        async move { join_all((0..5).map(|i| client.call(&q, i.to_string()))).await }
    });
    let wait_start = Instant::now();
    while started.load(Ordering::SeqCst) < 5 && wait_start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(started.load(Ordering::SeqCst), 5, "all calls started");
    server.shutdown().await.unwrap();
    let results = calls.await.unwrap();
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(
            r.unwrap().text().unwrap(),
            i.to_string(),
            "started call {i} answered"
        );
    }
    assert_all_acked_then_delete(&t, &q).await;
}

async fn exclusive_reply_queue_mode(t: Target) {
    let q = t.queue("fib");
    let server = fib_server(&t, &q).await;
    let client = RpcClient::builder()
        .reply_mode(ReplyMode::ExclusiveQueue)
        .connect(&t.url)
        .await
        .unwrap();
    assert!(
        client.reply_to().starts_with("amq.gen-"),
        "{}",
        client.reply_to()
    );
    let replies = join_all((0..50).map(|i: u64| client.call(&q, i.to_string()))).await;
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.unwrap().text().unwrap(), fib::fib(i as u64).to_string());
    }
    server.shutdown().await.unwrap();
}

/// A server on `queue` that answers with the request's body and content type.
async fn echo_server(t: &Target, queue: &str) -> warren_rpc::ServerHandle {
    RpcServer::new()
        .route(queue, |req: Request| async move {
            Ok(Response::new(req.body, req.content_type))
        })
        .start(&t.url)
        .await
        .expect("server starts")
}

async fn content_type_is_honoured(t: Target) {
    let q = t.queue("echo");
    let server = echo_server(&t, &q).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    let reply = client
        .call_with(
            &q,
            r#"{"a":1}"#,
            CallOptions::new()
                .content_type("application/json")
                .persistent(true),
        )
        .await
        .unwrap();
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(reply.body, br#"{"a":1}"#);
    server.shutdown().await.unwrap();
}

/// Bodies on each side of the sizes where framing changes come back byte for byte, many
/// at once: 16 KiB and up are read into a vector of their own and a reply that fits one
/// frame is written without a copy; past one frame (128 KiB on both brokers) a body is
/// split, and reassembled on the other side.
async fn large_bodies_come_back_intact(t: Target) {
    let q = t.queue("echo");
    let server = echo_server(&t, &q).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    let sizes = [
        16 * 1024 - 1,
        16 * 1024,
        64 * 1024,
        128 * 1024 - 8,
        128 * 1024 - 7,
        300_001,
    ];
    let calls = sizes
        .iter()
        .cycle()
        .take(4 * sizes.len())
        .enumerate()
        .map(|(i, &n)| {
            let body: Vec<u8> = (0..n).map(|b| (b * 31 + i) as u8).collect();
            let client = client.clone();
            let q = q.clone();
            async move { (client.call(&q, &body).await, body) }
        });
    for (reply, body) in join_all(calls).await {
        let reply = reply.unwrap();
        assert_eq!(reply.body.len(), body.len());
        assert!(
            reply.body == body,
            "a body of {} bytes came back changed",
            body.len()
        );
    }
    assert_eq!(client.in_flight(), 0);
    server.shutdown().await.unwrap();
}

/// Warren's own header types cross the wire both ways: the handler sees the caller's
/// headers (with their values' kinds) in its context, next to `x-deadline`.
async fn headers_reach_the_handler(t: Target) {
    let q = t.queue("headers");
    let server = RpcServer::new()
        .route(q.as_str(), |req: Request| async move {
            let h = &req.context.headers;
            let seen = format!(
                "{:?} {:?} {:?} {}",
                h.get("tenant").and_then(HeaderValue::as_str),
                h.get("attempt").and_then(HeaderValue::as_i64),
                h.get("dry-run").and_then(HeaderValue::as_bool),
                h.contains_key(warren_rpc::wire::HEADER_DEADLINE),
            );
            Ok(Response::text(seen))
        })
        .start(&t.url)
        .await
        .unwrap();
    let client = RpcClient::connect(&t.url).await.unwrap();
    let headers = Headers::new()
        .with("tenant", "acme")
        .with("attempt", 3)
        .with("dry-run", true);
    let reply = client
        .call_with(&q, "", CallOptions::new().headers(headers))
        .await
        .unwrap();
    assert_eq!(
        reply.text().unwrap(),
        r#"Some("acme") Some(3) Some(true) true"#
    );
    let too_long = Headers::new().with("k".repeat(256), 1);
    let err = client
        .call_with(&q, "", CallOptions::new().headers(too_long))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    client.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

/// Publishes a raw request with plain lapin, as a tutorial client would.
async fn raw_publish(url: &str, queue: &str, body: &[u8], props: lapin::BasicProperties) {
    let conn = lapin::Connection::connect(url, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish("".into(), queue.into(), Default::default(), body, props)
        .await
        .unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

async fn counting_server(t: &Target, q: &str) -> (warren_rpc::ServerHandle, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let server = RpcServer::new()
        .route(q, move |_req: Request| {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(Response::text("counted"))
            }
        })
        .start(&t.url)
        .await
        .unwrap();
    (server, count)
}

async fn wait_for(count: &AtomicUsize, n: usize) {
    let start = Instant::now();
    while count.load(Ordering::SeqCst) < n && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn one_way_and_expired_requests(t: Target) {
    let q = t.queue("count");
    let (server, count) = counting_server(&t, &q).await;
    // No reply_to: processed, no reply, acked.
    raw_publish(&t.url, &q, b"one-way", lapin::BasicProperties::default()).await;
    wait_for(&count, 1).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // x-deadline in the past: skipped without running the handler.
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        warren_rpc::wire::HEADER_DEADLINE.into(),
        lapin::types::AMQPValue::LongLongInt(1_000),
    );
    raw_publish(
        &t.url,
        &q,
        b"stale",
        lapin::BasicProperties::default().with_headers(headers),
    )
    .await;
    raw_publish(&t.url, &q, b"fresh", lapin::BasicProperties::default()).await;
    wait_for(&count, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "the stale request was skipped"
    );
    server.shutdown().await.unwrap();
    assert_all_acked_then_delete(&t, &q).await;
}

/// After a server's shutdown, nothing is left in its queue (every request was acked,
/// none will be redelivered); then the queue is deleted.
async fn assert_all_acked_then_delete(t: &Target, q: &str) {
    let conn = lapin::Connection::connect(&t.url, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let opts = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let info = ch
        .queue_declare(q.into(), opts, Default::default())
        .await
        .unwrap();
    assert_eq!(info.message_count(), 0, "every request was acked");
    ch.queue_delete(q.into(), Default::default()).await.unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

/// A slow request must not hold finished ones against the prefetch window: with
/// concurrency 4 and one call running for seconds, 40 quick calls still go through.
async fn slow_request_does_not_hold_back_others(t: Target) {
    let q = t.queue("hol");
    let server = RpcServer::new()
        .concurrency(4)
        .route(q.as_str(), |req: Request| async move {
            if &req.body[..] == b"slow" {
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            Ok(Response::bytes(req.body))
        })
        .start(&t.url)
        .await
        .unwrap();
    let client = RpcClient::connect(&t.url).await.unwrap();
    let slow = tokio::spawn({
        let (client, q) = (client.clone(), q.clone());
        async move { client.call(&q, "slow").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    for i in 0..40 {
        let reply = client
            .call_with(
                &q,
                i.to_string(),
                CallOptions::new().timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap();
        assert_eq!(reply.text().unwrap(), i.to_string());
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "quick calls waited for the slow one: {:?}",
        started.elapsed()
    );
    assert_eq!(slow.await.unwrap().unwrap().text().unwrap(), "slow");
    server.shutdown().await.unwrap();
    assert_all_acked_then_delete(&t, &q).await;
}

/// Acks are coalesced (`basic.ack(multiple)`), so handlers that finish out of order
/// must still get every request acked exactly once, and none run twice.
async fn out_of_order_completions_are_all_acked(t: Target) {
    let q = t.queue("ooo");
    let runs = Arc::new(AtomicUsize::new(0));
    let r2 = Arc::clone(&runs);
    let server = RpcServer::new()
        .concurrency(16)
        .route(q.as_str(), move |req: Request| {
            let runs = Arc::clone(&r2);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let n: u64 = std::str::from_utf8(&req.body)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                // Later requests often finish first.
                tokio::time::sleep(Duration::from_millis((n * 7919) % 23)).await;
                Ok(Response::bytes(req.body))
            }
        })
        .start(&t.url)
        .await
        .unwrap();
    let client = RpcClient::connect(&t.url).await.unwrap();
    let results = join_all((0..200).map(|i| client.call(&q, i.to_string()))).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().text().unwrap(), i.to_string());
    }
    server.shutdown().await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 200, "no request ran twice");
    assert_all_acked_then_delete(&t, &q).await;
}

async fn unknown_correlation_ids_are_dropped(t: Target) {
    let q = t.queue("fib");
    let server = fib_server(&t, &q).await;
    let client = RpcClient::builder()
        .reply_mode(ReplyMode::ExclusiveQueue)
        .connect(&t.url)
        .await
        .unwrap();
    for cid in [Some("someone-else.1"), Some("garbage"), None] {
        let mut props = lapin::BasicProperties::default();
        if let Some(cid) = cid {
            props = props.with_correlation_id(cid.into());
        }
        raw_publish(&t.url, &client.reply_to(), b"stray", props).await;
    }
    let replies = join_all((0..10).map(|i: u64| client.call(&q, i.to_string()))).await;
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.unwrap().text().unwrap(), fib::fib(i as u64).to_string());
    }
    assert_eq!(client.in_flight(), 0);
    server.shutdown().await.unwrap();
}

async fn in_flight_bound_fails_fast_when_asked(t: Target) {
    let q = t.queue("slow");
    let server = RpcServer::new()
        .route(q.as_str(), warren_rpc::services::sleep::handle)
        .start(&t.url)
        .await
        .unwrap();
    let client = RpcClient::builder()
        .max_in_flight(2, warren_rpc::WhenFull::FailFast)
        .connect(&t.url)
        .await
        .unwrap();
    let slow = || client.call(&q, "300");
    let (a, b, c) = tokio::join!(slow(), slow(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.call(&q, "0").await
    });
    assert_eq!(a.unwrap().body, b"300");
    assert_eq!(b.unwrap().body, b"300");
    let err = c.unwrap_err();
    assert!(
        matches!(err, Error::ResourceExhausted { limit: 2 }),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        client.call(&q, "0").await.unwrap().body,
        b"0",
        "slots come back"
    );
    server.shutdown().await.unwrap();
}

broker_tests!(
    in_flight_bound_fails_fast_when_asked,
    one_way_and_expired_requests,
    unknown_correlation_ids_are_dropped,
    fib_answers_exactly,
    two_hundred_calls_at_once,
    two_workers_share_a_queue,
    deadline_expires,
    no_route_fails_fast,
    remote_errors_are_typed,
    bad_input_is_rejected_not_looped,
    shutdown_drains_started_calls,
    out_of_order_completions_are_all_acked,
    slow_request_does_not_hold_back_others,
    exclusive_reply_queue_mode,
    content_type_is_honoured,
    headers_reach_the_handler,
    large_bodies_come_back_intact,
);

/// Idempotent calls in flight across a broker restart are resent and answered;
/// non-idempotent ones fail with a retryable `unavailable` and leave nothing pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_survive_a_broker_restart() {
    common::bounded(60, async {
        let broker = warren_broker::Broker::builder()
            .listen(([127, 0, 0, 1], 0).into())
            .start()
            .await
            .unwrap();
        let addr = broker.local_addr();
        let url = broker.amqp_url();
        let q = unique("sleep");
        let server = RpcServer::new()
            .route(q.as_str(), warren_rpc::services::sleep::handle)
            .start(&url)
            .await
            .unwrap();
        let client = RpcClient::connect(&url).await.unwrap();
        let opts = |idem| {
            CallOptions::new()
                .timeout(Duration::from_secs(20))
                .idempotent(idem)
        };
        let calls = tokio::spawn({
            let (client, q) = (client.clone(), q.clone());
            async move {
                tokio::join!(
                    client.call_with(&q, "500", opts(true)),
                    client.call_with(&q, "500", opts(false)),
                )
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        broker.shutdown().await;
        let broker = warren_broker::Broker::builder()
            .listen(addr)
            .start()
            .await
            .unwrap();
        let (idempotent, plain) = calls.await.unwrap();
        assert_eq!(
            idempotent.unwrap().body,
            b"500",
            "resent after reconnecting"
        );
        let err = plain.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err}");
        assert!(err.is_retryable());
        assert_eq!(client.in_flight(), 0);
        assert!(client.is_connected());
        server.shutdown().await.unwrap();
        broker.shutdown().await;
    })
    .await;
}

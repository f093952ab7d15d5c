//! Typed services (SPEC v2) end to end: `#[warren_rpc::service]` clients and servers
//! in every codec, `invalid_argument` with field paths, `unimplemented`, replies that
//! do not decode, and the request context inside handlers; on each broker target.

mod common;

use std::time::Duration;

use common::{unique, Target};
use serde::{Deserialize, Serialize};
use warren_rpc::services::calc::{CalcClient, CalcServer, Calculator};
use warren_rpc::{
    codec, typed, CallOptions, Code, Codec, Context, Error, QueueSpec, RpcClient, RpcServer,
    ServerHandle, Status,
};

/// A request queue that goes away with its last consumer (nothing left on RabbitMQ).
fn spec(queue: &str) -> QueueSpec {
    QueueSpec::tutorial(queue).auto_delete(true)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
    qty: u32,
    tags: Vec<String>,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Priority {
    Low,
    High { boost: u8 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<Item>,
    priority: Priority,
}

/// A service with structured arguments, a renamed method, context access, a method
/// without arguments or result, and a defaulted argument.
#[warren_rpc::service(queue = "shop")]
trait Shop {
    /// The number of pieces in `order`.
    async fn total(&self, order: Order) -> u64;
    /// `order`, `times` times, with ids 0, 1, ...
    async fn repeat(&self, order: Order, times: u8) -> Result<Vec<Order>, Status>;
    /// The caller's correlation id, as the handler sees it.
    #[method(name = "who-am-i")]
    async fn whoami(&self, ctx: &Context) -> Option<String>;
    /// Milliseconds left before the call's deadline, as the handler sees it.
    async fn budget_ms(&self, ctx: &Context) -> u64;
    /// Does nothing.
    async fn nothing(&self);
    /// `limit`, 10 when the caller leaves it out.
    async fn limited(&self, #[serde(default = "ten")] limit: u32) -> u32;
}

fn ten() -> u32 {
    10
}

struct MyShop;

impl Shop for MyShop {
    async fn total(&self, order: Order) -> u64 {
        order.items.iter().map(|i| u64::from(i.qty)).sum()
    }

    async fn repeat(&self, order: Order, times: u8) -> Result<Vec<Order>, Status> {
        if times > 100 {
            return Err(Status::invalid_argument("times is at most 100"));
        }
        Ok((0..u64::from(times))
            .map(|id| Order {
                id,
                ..order.clone()
            })
            .collect())
    }

    async fn whoami(&self, ctx: &Context) -> Option<String> {
        ctx.correlation_id.clone()
    }

    async fn budget_ms(&self, ctx: &Context) -> u64 {
        ctx.remaining().map_or(u64::MAX, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
        })
    }

    async fn nothing(&self) {}

    async fn limited(&self, limit: u32) -> u32 {
        limit
    }
}

fn order() -> Order {
    Order {
        id: 7,
        items: vec![
            Item {
                name: "nail".into(),
                qty: 40,
                tags: vec!["steel".into()],
                note: None,
            },
            Item {
                name: "glue".into(),
                qty: 2,
                tags: vec![],
                note: Some("fast".into()),
            },
        ],
        priority: Priority::High { boost: 3 },
    }
}

/// Serves the calc example and the shop on fresh queues.
async fn servers(t: &Target) -> (ServerHandle, String, String) {
    let (calc_q, shop_q) = (unique("calc"), unique("shop"));
    let server = RpcServer::new()
        .serve(CalcServer::new(Calculator).queue(spec(&calc_q)))
        .serve(ShopServer::new(MyShop).queue(spec(&shop_q)))
        .start(&t.url)
        .await
        .expect("the typed server starts");
    (server, calc_q, shop_q)
}

fn in_codec(codec: Codec) -> CallOptions {
    CallOptions::new().content_type(codec.content_type())
}

async fn round_trip_in_every_codec(t: Target) {
    let (server, calc_q, shop_q) = servers(&t).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    let calc = CalcClient::with_queue(&client, &calc_q);
    let shop = ShopClient::with_queue(&client, &shop_q);
    assert_eq!(calc.add(2, 3).await.unwrap(), 5, "JSON by default");
    for &codec in Codec::ALL {
        let c = format!("{codec:?}");
        assert_eq!(
            calc.add_with(in_codec(codec), 2, 3).await.unwrap(),
            5,
            "{c}"
        );
        assert_eq!(
            calc.fib_with(in_codec(codec), 30).await.unwrap(),
            "832040",
            "{c}"
        );
        assert_eq!(shop.total_with(in_codec(codec), order()).await.unwrap(), 42);
        let copies = shop.repeat_with(in_codec(codec), order(), 3).await.unwrap();
        assert_eq!(copies.len(), 3, "{c}");
        assert_eq!(copies[2], Order { id: 2, ..order() }, "{c}");
        shop.nothing_with(in_codec(codec)).await.unwrap();
        assert!(shop.whoami_with(in_codec(codec)).await.unwrap().is_some());
        match calc
            .fail_with(in_codec(codec), "not_found".into(), "no such key".into())
            .await
        {
            Err(Error::Remote(s)) => {
                assert_eq!((s.code(), s.message()), (Code::NotFound, "no such key"))
            }
            other => panic!("{c}: expected not_found, got {other:?}"),
        }
        // The server answers in the request's codec.
        let body = codec
            .encode(&serde_json::json!({"a": 20, "b": 22}))
            .unwrap();
        let reply = client
            .call_with(&calc_q, body, in_codec(codec).method("add"))
            .await
            .unwrap();
        assert_eq!(reply.content_type.as_deref(), Some(codec.content_type()));
        assert_eq!(codec.decode::<i64>(&reply.body).unwrap(), 42, "{c}");
    }
    // A defaulted argument, and a call through `typed::call` with a JSON value.
    let limit: u32 = typed::call(
        &client,
        &shop_q,
        "limited",
        &serde_json::json!({}),
        CallOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(limit, 10);
    assert_eq!(shop.limited(3).await.unwrap(), 3);
    server.shutdown().await.unwrap();
}

/// `method` on `queue` with a raw `body`, expecting an error status.
async fn raw_failure(
    client: &RpcClient,
    queue: &str,
    method: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Status {
    let mut options = CallOptions::new().content_type(content_type);
    if let Some(method) = method {
        options = options.method(method);
    }
    match client.call_with(queue, body, options).await {
        Err(Error::Remote(status)) => status,
        other => panic!("expected an error status, got {other:?}"),
    }
}

async fn bad_arguments_name_the_field(t: Target) {
    let (server, calc_q, shop_q) = servers(&t).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    let json = codec::JSON;
    let cases: [(&str, &str, &[u8], &str); 6] = [
        (&calc_q, "add", br#"{"a": 2}"#, "missing field `b`"),
        (&calc_q, "add", br#"{"a": 2, "b": "three"}"#, "at `b`"),
        (&calc_q, "add", b"", "missing field `a`"),
        (&calc_q, "add", b"2 3", "cannot decode"),
        (&calc_q, "fib", br#"{"n": -1}"#, "at `n`"),
        (
            &shop_q,
            "total",
            br#"{"order": {"id": 1, "priority": "Low", "items": [{"name": "x", "qty": "many", "tags": []}]}}"#,
            "at `order.items[0].qty`",
        ),
    ];
    for (queue, method, body, needle) in cases {
        let s = raw_failure(&client, queue, Some(method), json, body).await;
        assert_eq!(s.code(), Code::InvalidArgument, "{method} {body:?}");
        assert!(s.message().contains(needle), "{needle}: {}", s.message());
    }
    // The same in the binary codecs.
    for &codec in Codec::ALL {
        let body = codec
            .encode(&serde_json::json!({"a": 2, "b": "x"}))
            .unwrap();
        let s = raw_failure(&client, &calc_q, Some("add"), codec.content_type(), &body).await;
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("`b`"), "{codec:?}: {}", s.message());
    }
    // A content type that is not a codec names the ones accepted.
    let s = raw_failure(&client, &calc_q, Some("add"), "text/plain", b"2 3").await;
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message().contains("text/plain") && s.message().contains(codec::JSON),
        "{}",
        s.message()
    );
    // Arguments out of range are the handler's own invalid_argument.
    let calc = CalcClient::with_queue(&client, &calc_q);
    match calc.add(i64::MAX, 1).await {
        Err(Error::Remote(s)) => assert_eq!(s.code(), Code::InvalidArgument),
        other => panic!("expected invalid_argument, got {other:?}"),
    }
    server.shutdown().await.unwrap();
}

async fn unknown_method_is_unimplemented(t: Target) {
    let (server, calc_q, shop_q) = servers(&t).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    let s = raw_failure(&client, &calc_q, Some("mul"), codec::JSON, b"{}").await;
    assert_eq!(s.code(), Code::Unimplemented);
    assert!(
        s.message().contains("`mul`") && s.message().contains("add, fib, sleep, fail"),
        "{}",
        s.message()
    );
    let s = raw_failure(&client, &calc_q, None, codec::JSON, br#"{"a":1,"b":2}"#).await;
    assert_eq!(s.code(), Code::Unimplemented);
    assert!(s.message().contains("`type`"), "{}", s.message());
    // Renamed methods answer to their wire name only.
    let s = raw_failure(&client, &shop_q, Some("whoami"), codec::JSON, b"{}").await;
    assert_eq!(s.code(), Code::Unimplemented);
    let shop = ShopClient::with_queue(&client, &shop_q);
    assert!(shop.whoami().await.unwrap().is_some());
    server.shutdown().await.unwrap();
}

/// A client built from a different definition of `add` than the server's.
#[allow(dead_code)] // only its client is used
#[warren_rpc::service(queue = "calc")]
trait WrongCalc {
    async fn add(&self, a: i64, b: i64) -> Vec<String>;
}

async fn reply_that_does_not_decode_is_a_decode_error(t: Target) {
    let (server, calc_q, _) = servers(&t).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    for &codec in Codec::ALL {
        let wrong = WrongCalcClient::with_queue(&client, &calc_q);
        match wrong.add_with(in_codec(codec), 2, 3).await {
            Err(e @ Error::Decode { .. }) => {
                assert_eq!(e.code(), Code::Internal);
                assert!(e.to_string().contains(".add`"), "{e}");
            }
            other => panic!("{codec:?}: expected a decode error, got {other:?}"),
        }
    }
    server.shutdown().await.unwrap();
}

async fn handlers_see_the_call_context(t: Target) {
    let (server, _, shop_q) = servers(&t).await;
    let client = RpcClient::connect(&t.url).await.unwrap();
    let shop = ShopClient::with_queue(&client, &shop_q);
    let id = shop.whoami().await.unwrap().unwrap_or_default();
    assert!(id.contains('.'), "a Warren correlation id: {id}");
    let left = shop
        .budget_ms_with(CallOptions::new().timeout(Duration::from_secs(3)))
        .await
        .unwrap();
    assert!(left > 0 && left <= 3000, "{left}");
    server.shutdown().await.unwrap();
}

broker_tests!(
    round_trip_in_every_codec,
    bad_arguments_name_the_field,
    unknown_method_is_unimplemented,
    reply_that_does_not_decode_is_a_decode_error,
    handlers_see_the_call_context,
);

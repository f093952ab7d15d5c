//! Nested calls (SPEC v2): a chain A -> B -> C of typed services, each calling the next
//! with `CallOptions::from_context`, shares the first caller's budget. It works; when
//! the deadline expires in B, the caller gets a timeout by its deadline and C never
//! starts; when it expires in C, C is abandoned; a request whose `x-deadline` has
//! passed is never started. Replies come back on direct reply-to.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{unique, Target};
use warren_rpc::{
    CallOptions, Context, Error, QueueSpec, ReplyMode, RpcClient, RpcServer, ServerHandle, Status,
};

#[warren_rpc::service]
trait Front {
    /// `relay(x) + 1`, where B waits `b_delay_ms` and C works `c_work_ms`.
    async fn run(
        &self,
        ctx: &Context,
        x: i64,
        b_delay_ms: u64,
        c_work_ms: u64,
    ) -> Result<i64, Status>;
}

#[warren_rpc::service]
trait Middle {
    /// Waits `delay_ms`, then returns `work(x) + 1`.
    async fn relay(
        &self,
        ctx: &Context,
        x: i64,
        delay_ms: u64,
        c_work_ms: u64,
    ) -> Result<i64, Status>;
}

#[warren_rpc::service]
trait Back {
    /// Works `ms` milliseconds, then returns `x * 10`.
    async fn work(&self, ctx: &Context, x: i64, ms: u64) -> i64;
}

struct A {
    b: MiddleClient,
}

impl Front for A {
    async fn run(
        &self,
        ctx: &Context,
        x: i64,
        b_delay_ms: u64,
        c_work_ms: u64,
    ) -> Result<i64, Status> {
        let options = CallOptions::from_context(ctx);
        Ok(self.b.relay_with(options, x, b_delay_ms, c_work_ms).await? + 1)
    }
}

struct B {
    c: BackClient,
    calls_to_c: Arc<AtomicUsize>,
}

impl Middle for B {
    async fn relay(
        &self,
        ctx: &Context,
        x: i64,
        delay_ms: u64,
        c_work_ms: u64,
    ) -> Result<i64, Status> {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        self.calls_to_c.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .c
            .work_with(CallOptions::from_context(ctx), x, c_work_ms)
            .await?
            + 1)
    }
}

/// What C saw: when each call started, with the deadline it carried, and how many
/// calls finished their work.
#[derive(Default)]
struct Seen {
    starts: Mutex<Vec<(SystemTime, Option<SystemTime>)>>,
    finished: AtomicUsize,
}

struct C {
    seen: Arc<Seen>,
}

impl Back for C {
    async fn work(&self, ctx: &Context, x: i64, ms: u64) -> i64 {
        if let Ok(mut starts) = self.seen.starts.lock() {
            starts.push((SystemTime::now(), ctx.deadline));
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.seen.finished.fetch_add(1, Ordering::SeqCst);
        x * 10
    }
}

struct Chain {
    server: ServerHandle,
    client: RpcClient,
    a: FrontClient,
    c_queue: String,
    calls_to_c: Arc<AtomicUsize>,
    seen: Arc<Seen>,
}

fn spec(queue: &str) -> QueueSpec {
    QueueSpec::tutorial(queue).auto_delete(true)
}

/// A, B and C on one server, calling each other through one direct reply-to client.
async fn chain(t: &Target) -> Chain {
    let (qa, qb, qc) = (unique("front"), unique("middle"), unique("back"));
    let client = RpcClient::builder()
        .reply_mode(ReplyMode::DirectReplyTo)
        .connect(&t.url)
        .await
        .unwrap();
    assert_eq!(client.reply_to(), warren_rpc::wire::DIRECT_REPLY_TO);
    let calls_to_c = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Seen::default());
    let server = RpcServer::new()
        .serve(
            FrontServer::new(A {
                b: MiddleClient::with_queue(&client, &qb),
            })
            .queue(spec(&qa)),
        )
        .serve(
            MiddleServer::new(B {
                c: BackClient::with_queue(&client, &qc),
                calls_to_c: Arc::clone(&calls_to_c),
            })
            .queue(spec(&qb)),
        )
        .serve(
            BackServer::new(C {
                seen: Arc::clone(&seen),
            })
            .queue(spec(&qc)),
        )
        .start(&t.url)
        .await
        .unwrap();
    Chain {
        server,
        a: FrontClient::with_queue(&client, &qa),
        client,
        c_queue: qc,
        calls_to_c,
        seen,
    }
}

fn starts(seen: &Seen) -> Vec<(SystemTime, Option<SystemTime>)> {
    seen.starts.lock().map(|s| s.clone()).unwrap_or_default()
}

async fn chain_works_within_one_budget(t: Target) {
    let c = chain(&t).await;
    let budget = Duration::from_secs(5);
    let limit = SystemTime::now() + budget;
    let got =
        c.a.run_with(CallOptions::new().timeout(budget), 4, 0, 0)
            .await
            .unwrap();
    assert_eq!(got, 42, "C: 4 * 10, B: + 1, A: + 1");
    let starts = starts(&c.seen);
    assert_eq!(starts.len(), 1);
    let c_deadline = starts[0]
        .1
        .expect("C's request carries the inherited x-deadline");
    assert!(
        c_deadline <= limit + Duration::from_millis(5),
        "C's deadline {c_deadline:?} is past A's {limit:?}"
    );
    assert!(c_deadline > starts[0].0, "C's deadline had not passed");
    c.server.shutdown().await.unwrap();
}

async fn deadline_expiring_in_b_never_reaches_c(t: Target) {
    let c = chain(&t).await;
    let budget = Duration::from_millis(400);
    let started = Instant::now();
    let err =
        c.a.run_with(CallOptions::new().timeout(budget), 1, 1_000, 0)
            .await
            .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        took >= budget - Duration::from_millis(10) && took < budget + Duration::from_millis(700),
        "the caller gave up after {took:?}, not by its {budget:?} deadline"
    );
    // Past the time B would have called C: B was abandoned at the deadline.
    tokio::time::sleep(Duration::from_millis(1_300).saturating_sub(started.elapsed())).await;
    assert_eq!(
        c.calls_to_c.load(Ordering::SeqCst),
        0,
        "B went on after the deadline"
    );
    assert!(
        starts(&c.seen).is_empty(),
        "C started work for a caller that gave up"
    );
    c.server.shutdown().await.unwrap();
}

async fn deadline_expiring_in_c_abandons_c(t: Target) {
    let c = chain(&t).await;
    let budget = Duration::from_millis(800);
    let limit = SystemTime::now() + budget;
    let started = Instant::now();
    let err =
        c.a.run_with(CallOptions::new().timeout(budget), 1, 300, 2_000)
            .await
            .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(took < budget + Duration::from_millis(700), "{took:?}");
    tokio::time::sleep(Duration::from_millis(2_600).saturating_sub(started.elapsed())).await;
    let starts = starts(&c.seen);
    assert_eq!(starts.len(), 1, "B called C once, with time left");
    let (at, deadline) = starts[0];
    assert!(
        at < limit,
        "C started at {at:?}, after the caller's deadline {limit:?}"
    );
    assert!(
        deadline.is_some_and(|d| d <= limit + Duration::from_millis(5)),
        "C's deadline {deadline:?} is past the caller's {limit:?}"
    );
    assert_eq!(
        c.seen.finished.load(Ordering::SeqCst),
        0,
        "C was not abandoned at the deadline"
    );
    c.server.shutdown().await.unwrap();
}

async fn expired_requests_are_never_started(t: Target) {
    let c = chain(&t).await;
    // A call whose inherited deadline has passed is not sent at all.
    let back = BackClient::with_queue(&c.client, &c.c_queue);
    let past = CallOptions::new().deadline(SystemTime::now() - Duration::from_secs(1));
    let started = Instant::now();
    let err = back.work_with(past, 1, 0).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(100));
    // One that arrives past its x-deadline is dropped by C unstarted (a plain client
    // sends it one-way), while a fresh one after it is served.
    let conn = lapin::Connection::connect(&t.url, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut stale = lapin::types::FieldTable::default();
    stale.insert(
        warren_rpc::wire::HEADER_DEADLINE.into(),
        lapin::types::AMQPValue::LongLongInt(1_000),
    );
    for headers in [stale, lapin::types::FieldTable::default()] {
        let props = lapin::BasicProperties::default()
            .with_type("work".into())
            .with_content_type("application/json".into())
            .with_headers(headers);
        ch.basic_publish(
            "".into(),
            c.c_queue.as_str().into(),
            Default::default(),
            br#"{"x": 1, "ms": 0}"#,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let wait = Instant::now();
    while c.seen.finished.load(Ordering::SeqCst) < 1 && wait.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(starts(&c.seen).len(), 1, "only the fresh request started");
    conn.close(200, "done".into()).await.unwrap();
    c.server.shutdown().await.unwrap();
}

broker_tests!(
    chain_works_within_one_budget,
    deadline_expiring_in_b_never_reaches_c,
    deadline_expiring_in_c_abandons_c,
    expired_requests_are_never_started,
);

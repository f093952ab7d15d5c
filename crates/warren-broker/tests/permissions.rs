//! Permissions as RabbitMQ enforces them: one user whose configure, write and read
//! expressions cover disjoint name prefixes (`cfg-`, `wr-`, `rd-`) runs each
//! method against a resource it may and one it may not touch. The same matrix runs
//! on the embedded broker and, in `rabbitmq_access`, on a throw-away RabbitMQ node.

use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;
use warren_broker::{AccessControl, Broker, Permissions};

const USER: &str = "perm-user";
const PASS: &str = "perm-pass";
const VHOST: &str = "perm-vhost";

/// The reply code and text of a lapin error (0 and "" if it carries none).
fn refusal(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        _ => (0, String::new()),
    }
}

async fn open(url: &str) -> (Connection, Channel) {
    let c = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let ch = c.create_channel().await.unwrap();
    (c, ch)
}

/// A refused method: 403 with RabbitMQ's wording for `what` (e.g. "queue 'q'").
fn assert_refused<T: std::fmt::Debug>(r: Result<T, lapin::Error>, what: &str) {
    let err = r.expect_err(what);
    let (code, text) = refusal(&err);
    assert_eq!(code, 403, "{what}: {err}");
    let want =
        format!("ACCESS_REFUSED - access to {what} in vhost '{VHOST}' refused for user '{USER}'");
    assert_eq!(text, want);
}

/// Run every method allowed and denied. `admin` may do everything on the vhost.
pub async fn matrix(admin_url: &str, user_url: &str) {
    let (_a, admin) = open(admin_url).await;
    for q in ["rd-q", "wr-q"] {
        admin
            .queue_declare(
                q.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    for x in ["rd-x", "wr-x"] {
        admin
            .exchange_declare(
                x.into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let fresh = |url: &str| {
        let url = url.to_owned();
        async move { open(&url).await }
    };

    // configure: declare and delete.
    let (_c, ch) = fresh(user_url).await;
    ch.queue_declare(
        "cfg-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_declare(
        "cfg-x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_delete("cfg-x".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    assert_refused(
        ch.queue_declare(
            "wr-new".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        "queue 'wr-new'",
    );
    let (_c, ch) = fresh(user_url).await;
    assert_refused(
        ch.exchange_declare(
            "rd-new".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await,
        "exchange 'rd-new'",
    );
    let (_c, ch) = fresh(user_url).await;
    assert_refused(
        ch.queue_delete("rd-q".into(), QueueDeleteOptions::default())
            .await,
        "queue 'rd-q'",
    );
    let (_c, ch) = fresh(user_url).await;
    assert_refused(
        ch.exchange_delete("rd-x".into(), ExchangeDeleteOptions::default())
            .await,
        "exchange 'rd-x'",
    );

    // write: publish (the default exchange is amq.default).
    let (_c, ch) = fresh(user_url).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let pub_to = |ch: Channel, x: &'static str| async move {
        ch.basic_publish(
            x.into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await?
        .await
    };
    assert!(pub_to(ch.clone(), "wr-x").await.unwrap().is_ack());
    assert_refused(pub_to(ch, "rd-x").await, "exchange 'rd-x'");
    let (_c, ch) = fresh(user_url).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    assert_refused(pub_to(ch, "").await, "exchange 'amq.default'");

    // read: consume, get, purge.
    let (_c, ch) = fresh(user_url).await;
    ch.basic_consume(
        "rd-q".into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_get("rd-q".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    ch.queue_purge("rd-q".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_refused(
        ch.basic_consume(
            "wr-q".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await,
        "queue 'wr-q'",
    );
    let (_c, ch) = fresh(user_url).await;
    assert_refused(
        ch.basic_get("cfg-q".into(), BasicGetOptions::default())
            .await,
        "queue 'cfg-q'",
    );
    let (_c, ch) = fresh(user_url).await;
    assert_refused(
        ch.queue_purge("wr-q".into(), QueuePurgeOptions::default())
            .await,
        "queue 'wr-q'",
    );

    // bind: write on the queue, read on the exchange.
    let (_c, ch) = fresh(user_url).await;
    ch.queue_bind(
        "wr-q".into(),
        "rd-x".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert_refused(
        ch.queue_bind(
            "rd-q".into(),
            "rd-x".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        "queue 'rd-q'",
    );
    let (_c, ch) = fresh(user_url).await;
    assert_refused(
        ch.queue_bind(
            "wr-q".into(),
            "wr-x".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        "exchange 'wr-x'",
    );
    // exchange.bind likewise: write on the destination, read on the source.
    let (_c, ch) = fresh(user_url).await;
    ch.exchange_bind(
        "wr-x".into(),
        "rd-x".into(),
        "k".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    assert_refused(
        ch.exchange_bind(
            "rd-x".into(),
            "rd-x".into(),
            "k".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await,
        "exchange 'rd-x'",
    );

    // Clean up as the admin.
    for q in ["rd-q", "wr-q", "cfg-q"] {
        admin
            .queue_delete(q.into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    for x in ["rd-x", "wr-x"] {
        admin
            .exchange_delete(x.into(), ExchangeDeleteOptions::default())
            .await
            .unwrap();
    }
}

/// The embedded broker's store for the matrix: an admin and the restricted user.
fn store() -> AccessControl {
    let mut a = AccessControl::new();
    a.add_vhost(VHOST);
    a.add_user("perm-admin", "admin-pass", &["administrator"]);
    a.add_user(USER, PASS, &[]);
    a.add_user("no-perms", "pw", &[]);
    a.set_permissions("perm-admin", VHOST, Permissions::full())
        .unwrap();
    a.set_permissions(
        USER,
        VHOST,
        Permissions::new("^cfg-", "^wr-", "^rd-").unwrap(),
    )
    .unwrap();
    a
}

async fn bounded(f: impl std::future::Future<Output = ()>) {
    warren_test_support::within(Duration::from_secs(60), f).await
}

#[tokio::test]
async fn permission_matrix_on_the_embedded_broker() {
    bounded(async {
        let b = Broker::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .vhost(VHOST)
            .access_control(store())
            .start()
            .await
            .unwrap();
        let addr = b.local_addr();
        matrix(
            &format!("amqp://perm-admin:admin-pass@{addr}/{VHOST}"),
            &format!("amqp://{USER}:{PASS}@{addr}/{VHOST}"),
        )
        .await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn vhost_without_permissions_is_530_and_bad_password_is_403_after_a_delay() {
    bounded(async {
        let b = Broker::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .vhost(VHOST)
            .access_control(store())
            .start()
            .await
            .unwrap();
        let addr = b.local_addr();
        let err = Connection::connect(
            &format!("amqp://no-perms:pw@{addr}/{VHOST}"),
            ConnectionProperties::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            refusal(&err),
            (
                530,
                format!("NOT_ALLOWED - access to vhost '{VHOST}' refused for user 'no-perms'")
            )
        );
        let t = std::time::Instant::now();
        let err = Connection::connect(
            &format!("amqp://{USER}:wrong@{addr}/{VHOST}"),
            ConnectionProperties::default(),
        )
        .await
        .unwrap_err();
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "refused after {:?}",
            t.elapsed()
        );
        assert_eq!(refusal(&err).0, 403, "{err}");
        // guest is not in this store at all.
        assert!(Connection::connect(
            &format!("amqp://guest:guest@{addr}/{VHOST}"),
            ConnectionProperties::default()
        )
        .await
        .is_err());
        // The store is readable from the handle.
        let a = b.access_control();
        assert_eq!(
            a.permissions(USER, VHOST).map(|p| p.write.as_str()),
            Some("^wr-")
        );
        b.shutdown().await;
    })
    .await;
}

/// The same matrix on RabbitMQ: `WARREN_ACCESS_RABBITMQ_URL` is the throw-away
/// node's AMQP base (`amqp://127.0.0.1:5740`), `WARREN_ACCESS_NODE` its node name;
/// the test creates the vhost, users and permissions there with rabbitmqctl.
mod rabbitmq_access {
    use super::*;

    fn ctl(node: &str, args: &[&str]) {
        let out = std::process::Command::new("rabbitmqctl")
            .arg("-n")
            .arg(node)
            .args(args)
            .output()
            .expect("run rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    #[ignore = "needs WARREN_ACCESS_RABBITMQ_URL: a throw-away RabbitMQ node (see .ci/run)"]
    async fn permission_matrix_on_rabbitmq() {
        let base = std::env::var("WARREN_ACCESS_RABBITMQ_URL").expect("WARREN_ACCESS_RABBITMQ_URL");
        let node = std::env::var("WARREN_ACCESS_NODE")
            .unwrap_or_else(|_| "warren-access@localhost".into());
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-n", &node, "delete_vhost", VHOST])
            .output();
        ctl(&node, &["add_vhost", VHOST]);
        for (u, p) in [("perm-admin", "admin-pass"), (USER, PASS)] {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["-n", &node, "delete_user", u])
                .output();
            ctl(&node, &["add_user", u, p]);
        }
        ctl(
            &node,
            &[
                "set_permissions",
                "-p",
                VHOST,
                "perm-admin",
                ".*",
                ".*",
                ".*",
            ],
        );
        ctl(
            &node,
            &[
                "set_permissions",
                "-p",
                VHOST,
                USER,
                "^cfg-",
                "^wr-",
                "^rd-",
            ],
        );
        // host:port of `amqp://[user:pass@]host:port[/vhost]`.
        let rest = base.trim_start_matches("amqp://");
        let rest = rest.rsplit('@').next().unwrap_or(rest);
        let host = rest.split('/').next().unwrap_or(rest);
        bounded(matrix(
            &format!("amqp://perm-admin:admin-pass@{host}/{VHOST}"),
            &format!("amqp://{USER}:{PASS}@{host}/{VHOST}"),
        ))
        .await;
    }
}

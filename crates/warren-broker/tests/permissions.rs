//! Permissions as RabbitMQ enforces them: one user whose configure, write and read
//! expressions cover disjoint name prefixes (`cfg-`, `wr-`, `rd-`) runs each
//! method against a resource it may and one it may not touch. The same matrix runs
//! on the embedded broker and, in `rabbitmq_access`, on a throw-away RabbitMQ node.

use warren_test_support::access;

use access::{access_refused, open, refusal, run_table, Expect, Op};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;
use warren_broker::{AccessControl, Broker, Permissions};

const USER: &str = "perm-user";
const PASS: &str = "perm-pass";
const VHOST: &str = "perm-vhost";

/// The matrix: each of configure, write and read allowed and denied, for every
/// method RabbitMQ checks.
fn table() -> Vec<(Op, Expect)> {
    let no = |what: &str| access_refused(what, VHOST, USER);
    vec![
        // configure: declare and delete.
        (Op::DeclareQueue("cfg-q"), Expect::Ok),
        (Op::DeclareExchange("cfg-x"), Expect::Ok),
        (Op::DeleteExchange("cfg-x"), Expect::Ok),
        (Op::DeclareQueue("wr-new"), no("queue 'wr-new'")),
        (Op::DeclareExchange("rd-new"), no("exchange 'rd-new'")),
        (Op::DeleteQueue("rd-q"), no("queue 'rd-q'")),
        (Op::DeleteExchange("rd-x"), no("exchange 'rd-x'")),
        // write: publish (the default exchange is amq.default).
        (Op::Publish("wr-x", "k"), Expect::Ok),
        (Op::Publish("rd-x", "k"), no("exchange 'rd-x'")),
        (Op::Publish("", "k"), no("exchange 'amq.default'")),
        // read: consume, get, purge.
        (Op::Consume("rd-q"), Expect::Ok),
        (Op::Get("rd-q"), Expect::Ok),
        (Op::Purge("rd-q"), Expect::Ok),
        (Op::Consume("wr-q"), no("queue 'wr-q'")),
        (Op::Get("cfg-q"), no("queue 'cfg-q'")),
        (Op::Purge("wr-q"), no("queue 'wr-q'")),
        // bind: write on the queue, read on the exchange.
        (Op::BindQueue("wr-q", "rd-x"), Expect::Ok),
        (Op::BindQueue("rd-q", "rd-x"), no("queue 'rd-q'")),
        (Op::BindQueue("wr-q", "wr-x"), no("exchange 'wr-x'")),
        // exchange.bind likewise: write on the destination, read on the source.
        (Op::BindExchange("wr-x", "rd-x"), Expect::Ok),
        (Op::BindExchange("rd-x", "rd-x"), no("exchange 'rd-x'")),
    ]
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
    run_table(user_url, &table()).await;
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

/// After 20 failed logins from one address within a minute, that address is
/// refused even with the right password (Warren only; RabbitMQ has no such limit).
#[tokio::test]
async fn failed_logins_from_one_address_are_limited() {
    bounded(async {
        let b = Broker::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .vhost(VHOST)
            .access_control(store())
            .start()
            .await
            .unwrap();
        let addr = b.local_addr();
        let right = format!("amqp://{USER}:{PASS}@{addr}/{VHOST}");
        assert!(access::connect(&right).await.is_ok());
        let wrong = format!("amqp://{USER}:wrong@{addr}/{VHOST}");
        let guesses: Vec<_> = (0..20)
            .map(|_| {
                let wrong = wrong.clone();
                tokio::spawn(async move { access::connect(&wrong).await.map(drop) })
            })
            .collect();
        for g in guesses {
            let err = g.await.unwrap().unwrap_err();
            assert_eq!(refusal(&err).0, 403, "{err}");
        }
        let err = access::connect(&right).await.unwrap_err();
        assert_eq!(
            refusal(&err).0,
            403,
            "the right password after 20 failures: {err}"
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
    use access::{access_node, ctl, fresh_user, fresh_vhost};

    #[tokio::test]
    #[ignore = "needs WARREN_ACCESS_RABBITMQ_URL: a throw-away RabbitMQ node (see .ci/run)"]
    async fn permission_matrix_on_rabbitmq() {
        let (node, host) = access_node();
        fresh_vhost(&node, VHOST);
        for (u, p) in [("perm-admin", "admin-pass"), (USER, PASS)] {
            fresh_user(&node, u, p);
        }
        let full = [
            "set_permissions",
            "-p",
            VHOST,
            "perm-admin",
            ".*",
            ".*",
            ".*",
        ];
        ctl(&node, &full);
        let limited = [
            "set_permissions",
            "-p",
            VHOST,
            USER,
            "^cfg-",
            "^wr-",
            "^rd-",
        ];
        ctl(&node, &limited);
        bounded(matrix(
            &format!("amqp://perm-admin:admin-pass@{host}/{VHOST}"),
            &format!("amqp://{USER}:{PASS}@{host}/{VHOST}"),
        ))
        .await;
    }
}

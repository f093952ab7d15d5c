//! The management HTTP API driven by RabbitMQ's own `rabbitmqadmin`, unchanged,
//! against `warren broker --management-listen` and against a RabbitMQ node with the
//! management plugin: the same commands give the same (normalised) answers.
//!
//! Needs `/usr/bin/rabbitmqadmin` and WARREN_MGMT_RABBITMQ_URL (the throw-away
//! node's management URL, e.g. `http://127.0.0.1:15750`), which `.ci/run` exports.

mod mgmt_api {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const WARREN: &str = env!("CARGO_BIN_EXE_warren");

    fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        l.local_addr().expect("local addr").port()
    }

    /// `warren broker` with the management API, killed on drop.
    struct Warren(Child);

    impl Drop for Warren {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn start_warren() -> (Warren, u16) {
        let (amqp, http) = (free_port(), free_port());
        let child = Command::new(WARREN)
            .args(["broker", "--listen", &format!("127.0.0.1:{amqp}")])
            .args(["--management-listen", &format!("127.0.0.1:{http}")])
            .stdout(Stdio::null())
            .spawn()
            .expect("start warren broker");
        let w = Warren(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(Instant::now() < deadline, "management API never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        (w, http)
    }

    /// Run rabbitmqadmin against the API on `port`; its stdout.
    fn admin(port: u16, args: &[&str]) -> String {
        let out = Command::new("rabbitmqadmin")
            .args([
                "-H",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "-u",
                "guest",
                "-p",
                "guest",
            ])
            .args(args)
            .output()
            .expect("run rabbitmqadmin (apt-get install rabbitmq-server)");
        assert!(
            out.status.success(),
            "rabbitmqadmin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The lines of `out` that mention `name`, sorted.
    fn about(out: &str, name: &str) -> Vec<String> {
        let mut l: Vec<String> = out
            .lines()
            .filter(|l| l.contains(name))
            .map(str::to_owned)
            .collect();
        l.sort();
        l
    }

    /// The scenario, with what each step printed about the test's objects.
    /// With `expect` (Warren's answers), a queue count that differs is asked again
    /// for up to 15 s: RabbitMQ's counts trail (its stats are emitted every 5 s),
    /// Warren's are read live.
    fn scenario(
        port: u16,
        q: &str,
        expect: Option<&[(String, Vec<String>)]>,
    ) -> Vec<(String, Vec<String>)> {
        let mut seen: Vec<(String, Vec<String>)> = Vec::new();
        let mut step = |label: &str, args: &[&str]| {
            let want = expect
                .and_then(|e| e.get(seen.len()))
                .map(|(_, w)| w.clone());
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut out = admin(port, args);
            while args.contains(&"messages")
                && want.as_ref().is_some_and(|w| *w != about(&out, q))
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(500));
                out = admin(port, args);
            }
            seen.push((label.to_owned(), about(&out, q)));
            out
        };
        let qn = format!("name={q}");
        let dest = format!("destination={q}");
        let rk = format!("routing_key={q}");
        let queue = format!("queue={q}");
        step("declare queue", &["declare", "queue", &qn, "durable=false"]);
        step(
            "declare binding",
            &["declare", "binding", "source=amq.direct", &dest, &rk],
        );
        step(
            "publish",
            &["publish", "exchange=amq.direct", &rk, "payload=hello"],
        );
        step(
            "publish 2",
            &["publish", "exchange=amq.direct", &rk, "payload=world"],
        );
        step(
            "list queues",
            &["-f", "tsv", "list", "queues", "name", "messages"],
        );
        step(
            "list bindings",
            &[
                "-f",
                "tsv",
                "list",
                "bindings",
                "source",
                "destination",
                "routing_key",
            ],
        );
        step(
            "list exchanges",
            &["-f", "tsv", "list", "exchanges", "name", "type"],
        );
        step(
            "get",
            &[
                "-f",
                "tsv",
                "get",
                &queue,
                "count=1",
                "ackmode=ack_requeue_false",
            ],
        );
        step(
            "after get",
            &["-f", "tsv", "list", "queues", "name", "messages"],
        );
        step("purge", &["purge", "queue", &qn]);
        step(
            "after purge",
            &["-f", "tsv", "list", "queues", "name", "messages"],
        );
        let defs = std::env::temp_dir().join(format!("defs-{}-{port}.json", std::process::id()));
        let defs = defs.to_string_lossy().into_owned();
        step("export", &["export", &defs]);
        let text = std::fs::read_to_string(&defs).expect("read the export");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("export is JSON");
        let mine = |key: &str, field: &str| -> Vec<String> {
            doc[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x[field] == q)
                .map(|x| {
                    let mut x = x.clone();
                    x.as_object_mut().map(|m| m.remove("arguments"));
                    x.to_string()
                })
                .collect()
        };
        let exported = [
            ("exported queues".to_owned(), mine("queues", "name")),
            (
                "exported bindings".to_owned(),
                mine("bindings", "destination"),
            ),
        ];
        step("delete queue", &["delete", "queue", &qn]);
        step(
            "after delete",
            &["-f", "tsv", "list", "queues", "name", "messages"],
        );
        step("import", &["import", &defs]);
        step(
            "after import",
            &["-f", "tsv", "list", "queues", "name", "messages"],
        );
        step(
            "bindings after import",
            &[
                "-f",
                "tsv",
                "list",
                "bindings",
                "source",
                "destination",
                "routing_key",
            ],
        );
        step("list vhosts", &["-f", "tsv", "list", "vhosts", "name"]);
        step("list users", &["-f", "tsv", "list", "users", "name"]);
        step("cleanup", &["delete", "queue", &qn]);
        let _ = std::fs::remove_file(&defs);
        seen.extend(exported);
        seen
    }

    #[test]
    #[ignore = "needs WARREN_MGMT_RABBITMQ_URL: a RabbitMQ with the management plugin, and rabbitmqadmin"]
    fn rabbitmqadmin_gives_the_same_answers_on_warren_and_rabbitmq() {
        let url = std::env::var("WARREN_MGMT_RABBITMQ_URL")
            .expect("WARREN_MGMT_RABBITMQ_URL (e.g. http://127.0.0.1:15750)");
        let rabbit_port: u16 = url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .expect("a port in WARREN_MGMT_RABBITMQ_URL");
        let q = format!("warren-mgmt-{}", std::process::id());
        let (_warren, port) = start_warren();
        let on_warren = scenario(port, &q, None);
        let on_rabbit = scenario(rabbit_port, &q, Some(&on_warren));
        for ((step, r), (_, w)) in on_rabbit.iter().zip(&on_warren) {
            assert_eq!(r, w, "step {step:?}: RabbitMQ printed {r:?}, Warren {w:?}");
        }
        // The scenario saw something at the steps that must show the queue.
        let shown = |s: &str| on_warren.iter().any(|(l, v)| l == s && !v.is_empty());
        for s in [
            "list queues",
            "list bindings",
            "get",
            "exported queues",
            "after import",
        ] {
            assert!(shown(s), "Warren showed nothing at {s:?}: {on_warren:?}");
        }
    }

    #[test]
    #[ignore = "needs WARREN_MGMT_RABBITMQ_URL: runs with the management group (rabbitmqadmin)"]
    fn rabbitmqadmin_lists_consumers_and_closes_a_warren_connection() {
        let (_warren, port) = start_warren();
        let amqp = admin(port, &["-f", "raw_json", "show", "overview"]);
        let doc: serde_json::Value = serde_json::from_str(&amqp).expect("overview JSON");
        let amqp_port = doc[0]["listeners"][0]["port"].as_u64().expect("amqp port");
        let url = format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f");
        let server = Command::new(WARREN)
            .args(["serve", "fib", "--url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start warren serve");
        let _server = Warren(server);
        let list = || admin(port, &["-f", "tsv", "list", "connections", "name"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let first = loop {
            let l = list();
            if let Some(name) = l.lines().nth(1) {
                break name.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "the server never connected");
            std::thread::sleep(Duration::from_millis(100));
        };
        let consumers = admin(port, &["-f", "tsv", "list", "consumers", "queue.name"]);
        assert!(consumers.contains("rpc_queue"), "{consumers}");
        admin(port, &["close", "connection", &format!("name={first}")]);
        // The server reconnects: a connection with another name takes its place.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let l = list();
            if l.lines()
                .skip(1)
                .any(|n| !n.is_empty() && n.trim() != first)
                && !l.contains(&first)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "connection {first} still listed: {l}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `warren queues`, `connections` and `status` against RabbitMQ's management API (the
    /// same commands against `warren broker` are in tests/web.rs).
    mod cli {
        use std::process::Command;
        use std::time::{Duration, Instant};

        const WARREN: &str = env!("CARGO_BIN_EXE_warren");

        fn warren(url: &str, args: &[&str]) -> std::process::Output {
            Command::new(WARREN)
                .args(args)
                .args(["--management-url", url])
                .output()
                .expect("run warren")
        }

        fn admin(url: &str, args: &[&str]) {
            let port = url
                .rsplit(':')
                .next()
                .unwrap_or("15672")
                .trim_end_matches('/');
            let out = Command::new("rabbitmqadmin")
                .args(["-H", "127.0.0.1", "-P", port, "-u", "guest", "-p", "guest"])
                .args(args)
                .output()
                .expect("run rabbitmqadmin (apt-get install rabbitmq-server)");
            assert!(out.status.success(), "rabbitmqadmin {args:?}: {out:?}");
        }

        #[test]
        #[ignore = "needs WARREN_MGMT_RABBITMQ_URL: a RabbitMQ with the management plugin, and rabbitmqadmin"]
        fn warren_queues_and_status_read_rabbitmq() {
            let url = std::env::var("WARREN_MGMT_RABBITMQ_URL")
                .expect("WARREN_MGMT_RABBITMQ_URL (e.g. http://127.0.0.1:15750)");
            let q = format!("warren-cli-queues-{}", std::process::id());
            admin(
                &url,
                &["declare", "queue", &format!("name={q}"), "durable=false"],
            );
            for body in ["a", "b"] {
                let rk = format!("routing_key={q}");
                let payload = format!("payload={body}");
                admin(&url, &["publish", "exchange=amq.default", &rk, &payload]);
            }
            // RabbitMQ's counts trail by up to its 5 s statistics interval.
            let deadline = Instant::now() + Duration::from_secs(15);
            let row = loop {
                let out = warren(&url, &["queues"]);
                assert!(out.status.success(), "{out:?}");
                let table = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(table.starts_with("VHOST  NAME"), "{table}");
                let row: Option<Vec<String>> = table
                    .lines()
                    .find(|l| l.contains(&q))
                    .map(|l| l.split_whitespace().map(str::to_owned).collect());
                if let Some(r) = row.filter(|r| r.get(2).map(String::as_str) == Some("2")) {
                    break r;
                }
                assert!(Instant::now() < deadline, "no {q} with 2 ready: {table}");
                std::thread::sleep(Duration::from_millis(500));
            };
            assert_eq!(row[..5], ["/", q.as_str(), "2", "0", "0"], "{row:?}");
            let json = warren(&url, &["queues", "--json"]);
            let v: serde_json::Value =
                serde_json::from_slice(&json.stdout).expect("--json is JSON");
            assert!(v
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["name"] == q.as_str())));
            let status = warren(&url, &["status"]);
            let text = String::from_utf8_lossy(&status.stdout);
            assert!(status.status.success(), "{status:?}");
            assert!(text.contains("broker           RabbitMQ"), "{text}");
            assert!(warren(&url, &["connections"]).status.success());
            let refused = warren(&url, &["status", "--password", "not-the-password"]);
            assert_eq!(refused.status.code(), Some(7), "{refused:?}");
            admin(&url, &["delete", "queue", &format!("name={q}")]);
        }
    }
}

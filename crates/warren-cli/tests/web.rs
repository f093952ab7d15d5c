//! The broker's web view and what feeds it, against `warren broker
//! --management-listen`: the page and API behind Basic auth, queue rates from the
//! sampler, the RPC calls the broker times itself (`/api/warren/rpc`), and `warren
//! queues|connections|status` reading the API. The `browser::` group loads the page in
//! headless Chromium (WARREN_CHROMIUM), checks it shows the queues and RPC calls and
//! updates after a publish, and keeps a screenshot in `target/management.png`.

const WARREN: &str = env!("CARGO_BIN_EXE_warren");
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `warren broker` with the management API on free ports, stdout discarded (it prints
/// a line per listener: a pipe nobody reads would fail those prints).
struct Broker {
    _process: Killed,
    amqp: u16,
    http: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Broker {
    /// Started on a free port; tried again on another one if the API does not answer.
    /// One test at a time picks its port and starts its broker, so a parallel test's
    /// broker cannot take the port between the pick and the bind.
    fn start() -> Broker {
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..3 {
            let (amqp, http) = (free_port(), free_port());
            let process = Command::new(WARREN)
                .args(["broker", "--listen", &format!("127.0.0.1:{amqp}")])
                .args(["--management-listen", &format!("127.0.0.1:{http}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Killed)
                .expect("start warren broker");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if answers(http) {
                    return Broker {
                        _process: process,
                        amqp,
                        http,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("the management API never answered");
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp)
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client")
    }

    /// GET `path` as guest: (status, body).
    async fn get_as(&self, path: &str, auth: Option<(&str, &str)>) -> (u16, String) {
        let mut req = Self::client().get(format!("{}{path}", self.base()));
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get_as(path, Some(("guest", "guest"))).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn declare(&self, queue: &str) {
        let r = Self::client()
            .put(format!("{}/api/queues/%2F/{queue}", self.base()))
            .basic_auth("guest", Some("guest"))
            .body(r#"{"durable":false}"#)
            .send()
            .await
            .expect("PUT queue");
        assert!(r.status().is_success(), "declare {queue}: {}", r.status());
    }

    async fn publish(&self, queue: &str, n: usize) {
        for i in 0..n {
            let body = serde_json::json!({"properties": {}, "routing_key": queue,
                "payload": format!("m{i}"), "payload_encoding": "string"});
            let r = Self::client()
                .post(format!(
                    "{}/api/exchanges/%2F/amq.default/publish",
                    self.base()
                ))
                .basic_auth("guest", Some("guest"))
                .body(body.to_string())
                .send()
                .await
                .expect("publish");
            assert!(r.status().is_success(), "publish: {}", r.status());
        }
    }

    /// `warren serve fib --queue QUEUE` on this broker, once it consumes.
    async fn serve_fib(&self, queue: &str) -> Killed {
        let child = Command::new(WARREN)
            .args(["serve", "fib", "--queue", queue, "--url", &self.url()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start warren serve");
        let server = Killed(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self
                .get_as(
                    &format!("/api/queues/%2F/{queue}"),
                    Some(("guest", "guest")),
                )
                .await;
            let consumers = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["consumers"].as_u64());
            if status == 200 && consumers == Some(1) {
                return server;
            }
            assert!(Instant::now() < deadline, "the server never consumed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `n` calls of fib(10) on `queue`, each by `warren call`.
    fn call(&self, queue: &str, n: usize) {
        for _ in 0..n {
            let out = Command::new(WARREN)
                .args(["call", "--queue", queue, "--url", &self.url(), "10"])
                .output()
                .expect("run warren call");
            assert!(out.status.success(), "warren call: {out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "55");
        }
    }
}

/// Whether the management API on `port` answers `GET /api/overview` with 200.
fn answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /api/overview HTTP/1.0\r\nHost: 127.0.0.1\r\n\
               Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n";
    let mut answer = Vec::new();
    if c.write_all(req.as_bytes()).is_err() || c.read_to_end(&mut answer).is_err() {
        return false;
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until `f` gives Some, for at most `secs`.
async fn within<T, F: std::future::Future<Output = Option<T>>>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn warren_cli(args: &[&str]) -> std::process::Output {
    Command::new(WARREN)
        .args(args)
        .output()
        .expect("run warren")
}

mod web_page {
    use super::*;

    #[tokio::test]
    async fn the_page_and_the_api_need_basic_auth() {
        let b = Broker::start();
        for path in ["/", "/app.js", "/api/overview", "/api/warren/rpc"] {
            assert_eq!(b.get_as(path, None).await.0, 401, "{path} without auth");
            assert_eq!(
                b.get_as(path, Some(("guest", "nope"))).await.0,
                401,
                "{path} with a wrong password"
            );
        }
        let (status, page) = b.get_as("/", Some(("guest", "guest"))).await;
        assert_eq!(status, 200);
        assert!(page.contains(r#"<script src="app.js">"#), "{page}");
        let (status, js) = b.get_as("/app.js", Some(("guest", "guest"))).await;
        assert_eq!(status, 200);
        assert!(
            js.contains("/api/warren/rpc"),
            "the script reads the RPC view"
        );
        let (status, css) = b.get_as("/style.css", Some(("guest", "guest"))).await;
        assert_eq!(status, 200);
        assert!(css.contains(":focus-visible"), "focus is visible");
    }

    #[tokio::test]
    async fn queue_rates_come_from_the_sampler() {
        let b = Broker::start();
        b.declare("web-rates").await;
        b.publish("web-rates", 10).await;
        // The sampler reads the counters every 5 s: within two readings the queue's
        // publish rate is 10 messages over one interval.
        let rate = within(12, "a publish rate on web-rates", || async {
            let q = b.json("/api/queues/%2F/web-rates").await;
            let r = q["message_stats"]["publish_details"]["rate"].as_f64()?;
            (r > 0.0).then_some(r)
        })
        .await;
        assert!((1.0..=3.0).contains(&rate), "10 messages over ~5 s: {rate}");
        let q = b.json("/api/queues/%2F/web-rates").await;
        assert_eq!(q["message_stats"]["publish"], 10);
        assert_eq!(q["messages_ready"], 10);
    }

    #[tokio::test]
    async fn the_broker_times_rpc_calls_per_request_queue() {
        let b = Broker::start();
        let _server = b.serve_fib("web-rpc").await;
        b.call("web-rpc", 5);
        let rpc = b.json("/api/warren/rpc").await;
        let row = rpc
            .as_array()
            .and_then(|a| a.iter().find(|r| r["queue"] == "web-rpc"))
            .unwrap_or_else(|| panic!("no web-rpc row: {rpc}"));
        assert_eq!(row["calls"], 5, "{row}");
        assert_eq!(row["pending"], 0, "{row}");
        assert_eq!(row["window_calls"], 5, "{row}");
        let p50 = row["p50_ms"].as_f64().expect("a p50");
        let max = row["max_ms"].as_f64().expect("a max");
        assert!(p50 > 0.0 && p50 <= max && max < 5000.0, "{row}");
        assert!(row["calls_per_sec"].as_f64().is_some_and(|r| r > 0.0));
    }

    #[tokio::test]
    async fn warren_queues_connections_and_status_read_the_api() {
        let b = Broker::start();
        b.declare("web-cli").await;
        b.publish("web-cli", 3).await;
        let url = b.base();
        let m = ["--management-url", url.as_str()];
        let out = warren_cli(&[&["queues"], &m[..]].concat());
        assert!(out.status.success(), "{out:?}");
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.starts_with("VHOST  NAME"), "{table}");
        let row = table
            .lines()
            .find(|l| l.contains("web-cli"))
            .unwrap_or_else(|| panic!("no web-cli row: {table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..5], ["/", "web-cli", "3", "0", "0"], "{row}");
        let out = warren_cli(&[&["queues", "--json"], &m[..]].concat());
        let json: Value = serde_json::from_slice(&out.stdout).expect("--json is JSON");
        assert!(json
            .as_array()
            .is_some_and(|a| a.iter().any(|q| q["name"] == "web-cli")));
        let _server = b.serve_fib("web-cli-rpc").await;
        let out = warren_cli(&[&["connections"], &m[..]].concat());
        let conns = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(
            conns.lines().nth(1).is_some_and(|l| l.contains("guest")),
            "{conns}"
        );
        let out = warren_cli(&[&["status"], &m[..]].concat());
        let status = String::from_utf8_lossy(&out.stdout);
        assert!(status.contains("broker           Warren"), "{status}");
        assert!(status.contains("messages ready   3"), "{status}");
        // Failures: one line, a code per kind.
        let refused = warren_cli(&[&["status", "--password", "nope"], &m[..]].concat());
        assert_eq!(refused.status.code(), Some(7), "{refused:?}");
        let bad = warren_cli(&["status", "--management-url", &format!("{url}/nothing")]);
        assert_eq!(bad.status.code(), Some(10), "{bad:?}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let none = warren_cli(&[
            "queues",
            "--management-url",
            &format!("http://127.0.0.1:{port}"),
        ]);
        assert_eq!(none.status.code(), Some(6), "{none:?}");
        let line = String::from_utf8_lossy(&none.stderr);
        assert_eq!(line.trim().lines().count(), 1, "{line}");
        assert!(line.contains("--management-url"), "{line}");
    }
}

mod browser {
    use super::*;

    /// Chromium, headless, on `url` with the page's scripts run for `budget_ms` of
    /// virtual time (polls included): the DOM it ends with.
    fn dump_dom(chromium: &str, url: &str, budget_ms: u32) -> String {
        let out = Command::new(chromium)
            .args(headless(budget_ms))
            .arg("--dump-dom")
            .arg(url)
            .stderr(Stdio::null())
            .output()
            .expect("run chromium");
        assert!(out.status.success(), "chromium --dump-dom: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn headless(budget_ms: u32) -> Vec<String> {
        let profile = std::env::temp_dir().join(format!("warren-chromium-{}", std::process::id()));
        vec![
            "--headless".into(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--hide-scrollbars".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", profile.display()),
            "--window-size=1366,768".into(),
            format!("--virtual-time-budget={budget_ms}"),
        ]
    }

    /// The cells of the row whose header cell is `name`, inside the element with
    /// id `table` (text only).
    fn row(dom: &str, table: &str, name: &str) -> Option<Vec<String>> {
        let start = dom.find(&format!(r#"id="{table}""#))?;
        let end = dom[start..]
            .find("</table>")
            .map_or(dom.len(), |e| start + e);
        let section = &dom[start..end];
        let at = section.find(&format!(r#"<th scope="row">{name}</th>"#))?;
        let tr = &section[at..section[at..]
            .find("</tr>")
            .map_or(section.len(), |e| at + e)];
        Some(
            tr.split("</td>")
                .filter_map(|c| c.rsplit('>').next())
                .map(str::to_owned)
                .filter(|c| !c.is_empty())
                .collect(),
        )
    }

    #[tokio::test]
    #[ignore = "needs WARREN_CHROMIUM: Debian's chromium (headless) to load the page"]
    async fn the_page_shows_queues_and_rpc_calls_and_updates_after_a_publish() {
        let chromium = std::env::var("WARREN_CHROMIUM")
            .expect("WARREN_CHROMIUM (e.g. /usr/bin/chromium; apt-get install chromium)");
        let b = Broker::start();
        for q in ["orders", "invoices", "emails"] {
            b.declare(q).await;
        }
        b.publish("invoices", 3).await;
        let _server = b.serve_fib("fib").await;
        b.call("fib", 5);
        let url = format!("http://guest:guest@127.0.0.1:{}/", b.http);

        let dom = dump_dom(&chromium, &url, 3000);
        assert!(
            dom.contains(r#"data-polls=""#),
            "the page never polled: {dom}"
        );
        let orders = row(&dom, "queues-table", "orders").expect("an orders row");
        // Vhost, ready, unacked, consumers, publish/s, deliver/s, ack/s.
        assert_eq!(orders[..4], ["/", "0", "0", "0"], "{orders:?}");
        let invoices = row(&dom, "queues-table", "invoices").expect("an invoices row");
        assert_eq!(invoices[1], "3", "{invoices:?}");
        let fib = row(&dom, "queues-table", "fib").expect("the fib request queue");
        assert_eq!(fib[3], "1", "one consumer: {fib:?}");
        let rpc = row(&dom, "rpc-table", "fib").expect("an RPC row for fib");
        // Calls/s, calls, pending, p50, p90, p99, max.
        assert_eq!(rpc[1..3], ["5", "0"], "{rpc:?}");
        assert!(rpc[3].parse::<f64>().is_ok(), "a p50 in ms: {rpc:?}");
        assert!(
            dom.contains(">guest</td>"),
            "the server's connection is listed"
        );
        assert!(row(&dom, "exchanges-table", "amq.direct").is_some());
        assert!(row(&dom, "bindings-table", "(AMQP default)").is_some());

        // A publish: the page shows the new depth, and once sampled the rate.
        b.publish("orders", 7).await;
        within(12, "a publish rate on orders", || async {
            let q = b.json("/api/queues/%2F/orders").await;
            let r = q["message_stats"]["publish_details"]["rate"].as_f64()?;
            (r > 0.0).then_some(())
        })
        .await;
        // Several polls (virtual time): the page keeps polling and shows the latest.
        let dom = dump_dom(&chromium, &url, 11_000);
        let polls: u32 = dom
            .split(r#"data-polls=""#)
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|n| n.parse().ok())
            .expect("a poll count");
        assert!(polls >= 2, "the page polled {polls} times in 11 s");
        let orders = row(&dom, "queues-table", "orders").expect("an orders row");
        assert_eq!(orders[1], "7", "ready after the publish: {orders:?}");
        let rate: f64 = orders[4].parse().expect("a publish rate");
        assert!(rate > 0.0, "publish/s after the publish: {orders:?}");
        assert!(
            dom.contains("<polyline"),
            "the chart draws the rates once sampled"
        );

        // The screenshot: a test artifact (docs/management.png is a copy of one).
        let png =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/management.png");
        let _ = std::fs::remove_file(&png);
        let out = Command::new(&chromium)
            .args(headless(6000))
            .arg(format!("--screenshot={}", png.display()))
            .arg(&url)
            .stderr(Stdio::null())
            .output()
            .expect("run chromium --screenshot");
        assert!(out.status.success(), "chromium --screenshot: {out:?}");
        let bytes = std::fs::read(&png).expect("the screenshot was written");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        eprintln!("screenshot: {}", png.display());
        let profile = std::env::temp_dir().join(format!("warren-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(profile);
    }
}

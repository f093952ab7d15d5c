//! `warren queues`, `warren connections`, `warren status`: what a broker holds, read
//! from its management HTTP API (RabbitMQ's or `warren broker`'s), as a table, or
//! with `--json` as the API's JSON.

use serde_json::Value;

use super::mgmt_client::{MgmtArgs, MgmtError};

/// Arguments of `warren queues`, `connections` and `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: MgmtArgs,
}

/// A column: its header, whether it is numeric (right-aligned), and its cell.
type Column = (&'static str, bool, fn(&Value) -> String);

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn num(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for k in path {
        match cur.get(k) {
            Some(x) => cur = x,
            None => return "0".into(),
        }
    }
    match cur.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{f:.0}"),
        Some(f) => format!("{f:.1}"),
        None => "0".into(),
    }
}

/// The rows as an aligned table with a header line.
pub fn table(rows: &[Value], cols: &[Column]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|(_, _, f)| f(r)).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, (h, _, _))| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<&str>| -> String {
        let mut out: Vec<String> = Vec::with_capacity(vals.len());
        for (i, v) in vals.into_iter().enumerate() {
            let w = widths[i];
            out.push(if cols[i].1 {
                format!("{v:>w$}")
            } else {
                format!("{v:<w$}")
            });
        }
        out.join("  ").trim_end().to_owned()
    };
    let mut s = line(cols.iter().map(|(h, _, _)| *h).collect());
    s.push('\n');
    for c in &cells {
        s.push_str(&line(c.iter().map(String::as_str).collect()));
        s.push('\n');
    }
    s
}

const QUEUES: &[Column] = &[
    ("VHOST", false, |q| text(q, "vhost")),
    ("NAME", false, |q| text(q, "name")),
    ("READY", true, |q| num(q, &["messages_ready"])),
    ("UNACKED", true, |q| num(q, &["messages_unacknowledged"])),
    ("CONSUMERS", true, |q| num(q, &["consumers"])),
    ("PUBLISH/S", true, |q| {
        num(q, &["message_stats", "publish_details", "rate"])
    }),
    ("DELIVER/S", true, |q| {
        num(q, &["message_stats", "deliver_get_details", "rate"])
    }),
    ("ACK/S", true, |q| {
        num(q, &["message_stats", "ack_details", "rate"])
    }),
];

const CONNECTIONS: &[Column] = &[
    ("NAME", false, |c| text(c, "name")),
    ("USER", false, |c| text(c, "user")),
    ("VHOST", false, |c| text(c, "vhost")),
    ("CHANNELS", true, |c| num(c, &["channels"])),
    ("CLIENT", false, |c| {
        let p = c.get("client_properties").cloned().unwrap_or(Value::Null);
        let s = format!("{} {}", text(&p, "product"), text(&p, "version"));
        s.trim().to_owned()
    }),
];

fn print(api: &MgmtArgs, v: &Value, render: impl FnOnce(&Value) -> String) {
    if api.json {
        println!(
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        );
    } else {
        print!("{}", render(v));
    }
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Runs `warren queues`.
pub async fn queues(args: Args) -> Result<(), MgmtError> {
    let v = args.api.get("/api/queues").await?;
    print(&args.api, &v, |v| table(rows(v), QUEUES));
    Ok(())
}

/// Runs `warren connections`.
pub async fn connections(args: Args) -> Result<(), MgmtError> {
    let v = args.api.get("/api/connections").await?;
    print(&args.api, &v, |v| table(rows(v), CONNECTIONS));
    Ok(())
}

/// Runs `warren status`: the overview, one figure a line.
pub async fn status(args: Args) -> Result<(), MgmtError> {
    let v = args.api.get("/api/overview").await?;
    print(&args.api, &v, |o| {
        let product = format!("{} {}", text(o, "product_name"), text(o, "product_version"));
        let lines = [
            ("broker", product.trim().to_owned()),
            ("node", text(o, "node")),
            ("connections", num(o, &["object_totals", "connections"])),
            ("channels", num(o, &["object_totals", "channels"])),
            ("queues", num(o, &["object_totals", "queues"])),
            ("consumers", num(o, &["object_totals", "consumers"])),
            (
                "messages ready",
                num(o, &["queue_totals", "messages_ready"]),
            ),
            (
                "messages unacked",
                num(o, &["queue_totals", "messages_unacknowledged"]),
            ),
            (
                "publish/s",
                num(o, &["message_stats", "publish_details", "rate"]),
            ),
            (
                "deliver/s",
                num(o, &["message_stats", "deliver_get_details", "rate"]),
            ),
            ("ack/s", num(o, &["message_stats", "ack_details", "rate"])),
        ];
        lines.iter().map(|(k, v)| format!("{k:<17}{v}\n")).collect()
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{table, QUEUES};
    use serde_json::json;

    #[test]
    fn a_table_aligns_names_left_and_numbers_right() {
        let rows = [
            json!({"vhost": "/", "name": "jobs", "messages_ready": 7, "consumers": 1,
                   "message_stats": {"publish_details": {"rate": 1.25}}}),
            json!({"vhost": "/", "name": "a-longer-name", "messages_ready": 12345}),
        ];
        let t = table(&rows, QUEUES);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("VHOST  NAME           READY"), "{t}");
        assert!(lines[1].starts_with("/      jobs               7"), "{t}");
        assert!(lines[2].starts_with("/      a-longer-name  12345"), "{t}");
        assert!(lines[1].contains("1.2") || lines[1].contains("1.3"), "{t}");
    }
}

//! `warren broker`: run the embedded AMQP 0-9-1 broker standalone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use warren_broker::{Broker, Definitions, MemoryLimit, TlsOptions};

/// Arguments of `warren broker`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:5672")]
    listen: SocketAddr,
    /// Keep durable queues and persistent messages in this directory (memory-only without it).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// User name clients authenticate with.
    #[arg(long)]
    user: Option<String>,
    /// Password clients authenticate with.
    #[arg(long, default_value = "guest", env = "WARREN_BROKER_PASSWORD")]
    password: String,
    /// Memory high watermark for the broker process: a size (`512MiB`, `2GB`), a
    /// fraction of the machine's memory (`0.4` or `40%`, capped by a cgroup limit),
    /// or `off`. Past it, publishers are blocked (`connection.blocked`) until
    /// consumers catch up. Default: 0.4, as RabbitMQ's `vm_memory_high_watermark`.
    #[arg(long, value_name = "SIZE|FRACTION|off", value_parser = parse_memory_limit)]
    memory_limit: Option<MemoryLimit>,
    /// Free-disk limit for the data directory's disk, e.g. `50MB` (the default, as
    /// RabbitMQ's) or `1GiB`: below it, publishers are blocked (`connection.blocked`)
    /// until space is freed. `0` turns the disk alarm off.
    #[arg(long, value_name = "SIZE", value_parser = parse_limit, default_value = "50MB")]
    disk_free_limit: u64,
    /// Most authenticated client connections at once; a client that authenticates
    /// past it is refused with 530. Sockets still in the handshake do not count.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Most sockets in the handshake (accepted, not yet authenticated) at once; past
    /// it a new socket evicts the one that has gone longest without progress, so
    /// idle or slow-loris sockets cannot keep real clients out.
    #[arg(long, default_value_t = 512)]
    max_pending_handshakes: usize,
    /// The vhost `--user` gets full permissions on (created if missing; `/` always
    /// exists, and definitions or the management API add more).
    #[arg(long, default_value = "/")]
    vhost: String,
    /// Load RabbitMQ definitions JSON (what `rabbitmqctl export_definitions`
    /// writes): users, vhosts and permissions, then exchanges, queues and bindings,
    /// before clients are accepted. The `--user` is added only if given.
    #[arg(long, value_name = "FILE")]
    definitions: Option<PathBuf>,
    /// Write the broker's definitions (users, vhosts, permissions, exchanges,
    /// queues, bindings) as RabbitMQ definitions JSON to FILE once it has started
    /// and loaded `--definitions` (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    export_definitions: Option<PathBuf>,
    /// Time a socket has from accept to `connection.open`, e.g. `5s` or `500ms`.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    handshake_timeout: Duration,
    /// Also listen for TLS (`amqps://`) on this address, e.g. `127.0.0.1:5671`
    /// (needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<SocketAddr>,
    /// The broker's TLS certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_key: Option<PathBuf>,
    /// The CA certificates (PEM) that client certificates are checked against.
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_ca: Option<PathBuf>,
    /// Ask TLS clients for a certificate and check it against --tls-ca (RabbitMQ's
    /// verify_peer); offers EXTERNAL login (the user is the certificate's CN).
    /// Clients without a certificate may still log in with a password unless
    /// --tls-fail-if-no-peer-cert.
    #[arg(long, requires = "tls_ca")]
    tls_verify_peer: bool,
    /// Refuse TLS clients that present no certificate (RabbitMQ's
    /// fail_if_no_peer_cert); implies --tls-verify-peer.
    #[arg(long, requires = "tls_ca")]
    tls_fail_if_no_peer_cert: bool,
    /// Turn the plain (non-TLS) listener off: serve only --tls-listen.
    #[arg(long, requires = "tls_listen")]
    no_plain_listen: bool,
    /// Serve RabbitMQ's management HTTP API (rabbitmqadmin works unchanged) on
    /// this address, e.g. `127.0.0.1:15672`; Basic auth with the broker's users.
    #[arg(long, value_name = "ADDR")]
    management_listen: Option<SocketAddr>,
    /// Serve the broker's metrics in Prometheus text format at http://ADDR/metrics,
    /// under rabbitmq_prometheus's names (e.g. 127.0.0.1:15692, its port).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

/// Like [`parse_size`], and `0` (no limit) is allowed.
fn parse_limit(text: &str) -> Result<u64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    parse_size(text).map(|n| n as u64)
}

/// Parses `--memory-limit`: `off`/`none`, a fraction (`0.4`, `40%`) or a size.
fn parse_memory_limit(text: &str) -> Result<MemoryLimit, String> {
    let text = text.trim();
    if ["off", "none", "unlimited"].contains(&text.to_ascii_lowercase().as_str()) {
        return Ok(MemoryLimit::Unlimited);
    }
    let fraction = match text.strip_suffix('%') {
        Some(percent) => Some(percent.trim().parse::<f64>().map(|p| p / 100.0)),
        None if text.contains('.') => Some(text.parse::<f64>()),
        None => None,
    };
    match fraction {
        Some(Ok(x)) if x > 0.0 && x <= 1.0 => Ok(MemoryLimit::Relative(x)),
        Some(_) => Err(format!(
            "`{text}` is not a fraction of memory in (0, 1]; try 0.4 or 40%"
        )),
        None => parse_size(text).map(MemoryLimit::Absolute),
    }
}

/// Parses a byte count with an optional unit: `B`, `KB`/`MB`/`GB` (powers of 1000)
/// or `KiB`/`MiB`/`GiB` (powers of 1024), case-insensitive.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size; try 1048576, 512MiB or 2GB"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    n.checked_mul(scale)
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

/// Raises the open-file limit to the hard limit (every socket is a descriptor) and
/// warns when even that is short of what the connection limits need.
fn raise_fd_limit(sockets: usize) {
    // Listener, data-directory files, stdio and some slack.
    let need = sockets as u64 + 64;
    match warren_broker::raise_fd_limit() {
        Ok(limit) if limit < need => tracing::warn!(
            limit,
            need,
            "the open-file limit is below --max-connections + --max-pending-handshakes; \
             raise it (ulimit -n / LimitNOFILE) or lower those flags"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// The TLS listener of the `--tls-*` flags (`None`: no `--tls-listen`).
fn tls_options(args: &Args) -> Result<Option<(SocketAddr, TlsOptions)>, String> {
    let (Some(addr), Some(cert), Some(key)) = (args.tls_listen, &args.tls_cert, &args.tls_key)
    else {
        return Ok(None);
    };
    let mut tls = TlsOptions::from_files(cert, key).map_err(|e| e.to_string())?;
    if let Some(ca) = &args.tls_ca {
        tls = tls.client_ca_file(ca).map_err(|e| e.to_string())?;
    }
    let tls = tls
        .verify_peer(args.tls_verify_peer || args.tls_fail_if_no_peer_cert)
        .fail_if_no_peer_cert(args.tls_fail_if_no_peer_cert);
    Ok(Some((addr, tls)))
}

/// Runs `warren broker` until SIGINT/SIGTERM.
pub async fn run(args: Args) -> Result<(), String> {
    raise_fd_limit(args.max_connections + args.max_pending_handshakes);
    let mut builder = Broker::builder()
        .release_memory_with(crate::alloc::release_freed_memory)
        .listen(args.listen)
        .plain_listener(!args.no_plain_listen)
        .vhost(args.vhost.clone())
        .max_connections(args.max_connections)
        .max_pending_handshakes(args.max_pending_handshakes)
        .handshake_timeout(args.handshake_timeout);
    if let Some((addr, tls)) = tls_options(&args)? {
        builder = builder.tls_listen(addr, tls);
    }
    if let Some(file) = &args.definitions {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read definitions {}: {e}", file.display()))?;
        let defs = Definitions::from_json(&text)
            .map_err(|e| format!("cannot load definitions {}: {e}", file.display()))?;
        builder = builder.definitions(defs);
    }
    if args.definitions.is_none() || args.user.is_some() {
        builder = builder.credentials(args.user.unwrap_or_else(|| "guest".into()), args.password);
    }
    if let Some(dir) = args.data_dir {
        builder = builder.data_dir(dir);
    }
    if let Some(limit) = args.memory_limit {
        builder = builder.memory_watermark(limit);
    }
    builder = builder.disk_free_limit(args.disk_free_limit);
    if let Some(addr) = args.management_listen {
        builder = builder.management_listen(addr);
    }

    let broker = builder
        .start()
        .await
        .map_err(|e| format!("cannot start the broker: {e}"))?;
    let memory = match broker.memory_limit() {
        Some(bytes) => format!("memory limit {:.1} MiB", bytes as f64 / f64::from(1 << 20)),
        None => "no memory limit".to_owned(),
    };
    // Listen for SIGINT/SIGTERM before the ready line, so a signal right after it is caught.
    let shutdown = crate::signal::listen();
    let listening = match (args.no_plain_listen, broker.tls_addr()) {
        (true, Some(tls)) => format!("{tls} for TLS only"),
        (false, Some(tls)) => format!("{} and on {tls} for TLS", broker.local_addr()),
        (_, None) => broker.local_addr().to_string(),
    };
    println!(" [*] Warren broker listening on {listening} ({memory})");
    if let Some(addr) = broker.management_addr() {
        println!(" [*] Management HTTP API on http://{addr}/api/");
    }
    let mut metrics = None;
    if let Some(addr) = args.metrics_listen {
        let stats = broker.stats();
        let page = move || {
            let stats = stats.clone();
            async move { warren_broker::prometheus::render(&stats.snapshot().await) }
        };
        let served =
            crate::metrics_http::serve_text(addr, warren_broker::prometheus::CONTENT_TYPE, page)
                .await?;
        println!(" [*] Metrics at http://{}/metrics", served.addr);
        metrics = Some(served);
    }
    if let Some(file) = &args.export_definitions {
        let json = broker.export_definitions().to_json();
        if file.as_os_str() == "-" {
            println!("{json}");
        } else {
            std::fs::write(file, json)
                .map_err(|e| format!("cannot write definitions {}: {e}", file.display()))?;
        }
    }
    shutdown.wait().await;
    eprintln!(" [*] Shutting down: closing connections");
    if let Some(served) = metrics {
        served.stop();
    }
    broker.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_limit, parse_memory_limit, parse_size};
    use warren_broker::MemoryLimit;

    #[test]
    fn sizes_in_bytes_and_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("64 kib"), Ok(64 << 10));
        assert_eq!(parse_size("10B"), Ok(10));
    }

    #[test]
    fn memory_limits_are_sizes_fractions_or_off() {
        assert_eq!(
            parse_memory_limit("64MiB"),
            Ok(MemoryLimit::Absolute(64 << 20))
        );
        assert_eq!(parse_memory_limit("0.4"), Ok(MemoryLimit::Relative(0.4)));
        assert_eq!(parse_memory_limit("25%"), Ok(MemoryLimit::Relative(0.25)));
        assert_eq!(parse_memory_limit("1.0"), Ok(MemoryLimit::Relative(1.0)));
        assert_eq!(parse_memory_limit("off"), Ok(MemoryLimit::Unlimited));
        assert_eq!(parse_memory_limit("None"), Ok(MemoryLimit::Unlimited));
        for bad in ["0.0", "1.5", "150%", "abc%", "0", "x.y"] {
            let err = parse_memory_limit(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
        assert!(parse_memory_limit("2.5")
            .unwrap_err()
            .contains("0.4 or 40%"));
    }

    #[test]
    fn bad_sizes_are_refused_with_a_hint() {
        for bad in ["", "MiB", "12XB", "0", "-5", "99999999999999999999GiB"] {
            let err = parse_size(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
        assert!(parse_size("1TB").unwrap_err().contains("use B, KB"));
    }

    #[test]
    fn disk_free_limits_take_sizes_and_zero() {
        assert_eq!(parse_limit("50MB"), Ok(50_000_000));
        assert_eq!(parse_limit("1GiB"), Ok(1 << 30));
        assert_eq!(parse_limit("524288"), Ok(512 << 10));
        assert_eq!(parse_limit("0"), Ok(0));
        assert!(parse_limit("-1").is_err());
        assert!(parse_limit("5XB").unwrap_err().contains("use B, KB"));
    }
}

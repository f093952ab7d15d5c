//! One module per subcommand.

pub mod bench;
mod bench_cpu;
mod bench_raw;
mod bench_report;
mod bench_rpc_raw;
mod bench_setup;
pub mod broker;
pub mod call;
pub mod completions;
pub mod demo;
pub mod inspect;
pub mod mgmt_client;
pub mod serve;

/// `--url`: `$AMQP_URL`, else the local default. Several addresses (repeat `--url`, or
/// separate them with commas) are tried in order, and failed over to in that order.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// AMQP URL of the broker; repeat (or separate with commas) for fallbacks.
    #[arg(long, env = "AMQP_URL", default_value = warren_rpc::DEFAULT_URL, value_delimiter = ',', value_parser = crate::parse::amqp_url)]
    pub url: Vec<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// The client's `--tls-*` flags (`warren call`, `serve` and `bench`).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// For `amqps://`: trust the CA certificates in this PEM file instead of the
    /// system's store.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// For `amqps://`: present this client certificate (PEM; needs --tls-key), for
    /// brokers that verify peers.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Log in with SASL EXTERNAL (the user is the client certificate's CN).
    #[arg(long, requires = "tls_cert")]
    pub tls_external: bool,
    /// DANGER: accept any broker certificate (no CA, expiry or host-name check); every
    /// connection logs a warning. For tests against self-signed brokers only.
    #[arg(long)]
    pub tls_insecure: bool,
}

impl TlsArgs {
    /// The TLS options of the flags (`None`: none given, so `amqps://` uses the
    /// library's defaults).
    pub fn config(&self) -> warren_rpc::Result<Option<warren_rpc::TlsConfig>> {
        let given = self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_insecure;
        if !given {
            return Ok(None);
        }
        let mut tls = warren_rpc::TlsConfig::new();
        if let Some(ca) = &self.tls_ca {
            tls = tls.ca_file(ca)?;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls = tls.client_cert_files(cert, key)?;
        }
        if self.tls_external {
            tls = tls.external_login();
        }
        if self.tls_insecure {
            tls = tls.danger_accept_invalid_certs();
        }
        Ok(Some(tls))
    }
}

impl BrokerArgs {
    /// The first address (clap guarantees at least one through the default).
    pub fn primary(&self) -> &str {
        self.url
            .first()
            .map_or(warren_rpc::DEFAULT_URL, String::as_str)
    }

    /// The addresses after the first.
    pub fn fallbacks(&self) -> impl Iterator<Item = &String> {
        self.url.iter().skip(1)
    }

    /// The TLS options of the `--tls-*` flags (`None`: none given, so `amqps://`
    /// uses the library's defaults).
    pub fn tls(&self) -> warren_rpc::Result<Option<warren_rpc::TlsConfig>> {
        self.tls.config()
    }

    /// A client builder with the fallback addresses and the `--tls-*` options; connect
    /// it to [`primary`](Self::primary).
    pub fn builder(&self) -> warren_rpc::Result<warren_rpc::ClientBuilder> {
        let mut builder = warren_rpc::RpcClient::builder();
        for url in self.fallbacks() {
            builder = builder.fallback_url(url.clone());
        }
        if let Some(tls) = self.tls()? {
            builder = builder.tls(tls);
        }
        Ok(builder)
    }
}

/// The broker at `url`, or, without one, an embedded broker started on a free
/// loopback port (with `tls`, a TLS listener there instead of the plain one). Returns the embedded broker's
/// handle (to shut it down) and the URL.
pub async fn broker_or(
    url: Option<&str>,
    tls: Option<warren_broker::TlsOptions>,
) -> Result<(Option<warren_broker::BrokerHandle>, String), String> {
    if let Some(url) = url {
        return Ok((None, url.to_owned()));
    }
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut builder = warren_broker::Broker::builder()
        .listen(loopback)
        .release_memory_with(crate::alloc::release_freed_memory);
    if let Some(tls) = tls {
        builder = builder.plain_listener(false).tls_listen(loopback, tls);
    }
    let broker = builder
        .start()
        .await
        .map_err(|e| format!("cannot start the embedded broker: {e}"))?;
    let url = broker.amqp_url();
    Ok((Some(broker), url))
}

#[cfg(test)]
mod tests {
    use super::BrokerArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        broker: BrokerArgs,
    }

    #[test]
    fn no_tls_flags_leave_the_library_defaults() {
        let cli = Cli::try_parse_from(["warren"]).unwrap();
        assert!(cli.broker.tls().unwrap().is_none());
    }

    #[test]
    fn a_missing_ca_file_is_an_error_naming_it() {
        let cli = Cli::try_parse_from(["warren", "--tls-ca", "/nonexistent/ca.pem"]).unwrap();
        let err = cli.broker.tls().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn insecure_is_carried_to_the_config() {
        let cli = Cli::try_parse_from(["warren", "--tls-insecure"]).unwrap();
        let tls = cli.broker.tls().unwrap().unwrap();
        assert!(tls.accepts_invalid_certs());
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        assert!(Cli::try_parse_from(["warren", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["warren", "--tls-external"]).is_err());
    }
}

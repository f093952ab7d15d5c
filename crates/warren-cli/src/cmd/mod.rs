//! One module per subcommand.

pub mod bench;
mod bench_cpu;
mod bench_raw;
mod bench_report;
mod bench_rpc_raw;
pub mod broker;
pub mod call;
pub mod completions;
pub mod demo;
pub mod raw;
pub mod serve;

/// `--url`: `$AMQP_URL`, else the local default. Several addresses (repeat `--url`, or
/// separate them with commas) are tried in order, and failed over to in that order.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// AMQP URL of the broker; repeat (or separate with commas) for fallbacks.
    #[arg(long, env = "AMQP_URL", default_value = warren_rpc::DEFAULT_URL, value_delimiter = ',', value_parser = crate::parse::amqp_url)]
    pub url: Vec<String>,
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

    /// A client builder with the fallback addresses; connect it to [`primary`](Self::primary).
    pub fn builder(&self) -> warren_rpc::ClientBuilder {
        let mut builder = warren_rpc::RpcClient::builder();
        for url in self.fallbacks() {
            builder = builder.fallback_url(url.clone());
        }
        builder
    }
}

/// The broker at `url`, or, without one, an embedded broker started on a free
/// loopback port. Returns the embedded broker's handle (to shut it down) and the URL.
pub async fn broker_or(
    url: Option<&str>,
) -> Result<(Option<warren_broker::BrokerHandle>, String), String> {
    if let Some(url) = url {
        return Ok((None, url.to_owned()));
    }
    let broker = warren_broker::Broker::builder()
        .listen(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .map_err(|e| format!("cannot start the embedded broker: {e}"))?;
    let url = broker.amqp_url();
    Ok((Some(broker), url))
}

//! One module per subcommand.

pub mod bench;
pub mod broker;
pub mod call;
pub mod demo;
pub mod serve;

/// `--url`: `$AMQP_URL`, else the local default.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// AMQP URL of the broker.
    #[arg(long, env = "AMQP_URL", default_value = warren_rpc::DEFAULT_URL)]
    pub url: String,
}

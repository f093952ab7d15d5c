//! RabbitMQ's management HTTP API (feature `management`), so `rabbitmqadmin` and
//! scripts written for RabbitMQ work unchanged, Warren's own `/api/warren/rpc`,
//! and a live page at `/`; all behind Basic auth. Served with axum on
//! [`crate::BrokerBuilder::management_listen`].
//!
//! One file per job: the router and shared state here; Basic auth (`auth.rs`);
//! error bodies (`error.rs`); JSON shapes (`json.rs`, `props.rs`); `columns=` and
//! `sort=` (`listing.rs`); the handlers by resource (`overview.rs`, `queues.rs`,
//! `messages.rs`, `exchanges.rs`, `bindings.rs`, `connections.rs`,
//! `definitions.rs`), what queues and exchanges share (`resource.rs`); Warren's paths (`warren.rs`); the embedded page (`page.rs`).

mod auth;
mod bindings;
mod connections;
mod definitions;
mod error;
mod exchanges;
mod json;
mod listing;
mod messages;
mod overview;
mod page;
mod props;
mod queues;
mod resource;
mod warren;

use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use crate::vhost::VHost;
use axum::routing::{delete, get, post};
use axum::Router;
use error::ApiError;
use exchanges::Exchanges;
use queues::Queues;
use std::sync::Arc;

/// The connection id the API acts as when it declares, purges or deletes (real
/// connections are numbered from 1).
const API_CONN: u64 = 0;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Api {
    shared: Arc<Shared>,
    stats: Stats,
    /// Where the API listens.
    addr: std::net::SocketAddr,
}

/// Handlers' state.
type St = axum::extract::State<Arc<Api>>;

impl Api {
    /// The vhost named `name` (404 if there is none).
    fn vhost(&self, name: &str) -> Result<Arc<VHost>, ApiError> {
        self.vhosts()
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(ApiError::not_found)
    }

    /// Every vhost.
    fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.shared.vhosts.all()
    }

    /// This node's name, RabbitMQ-style (`warren@host`).
    fn node(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        format!("warren@{host}")
    }
}

/// The exchange name in a path: RabbitMQ spells the default exchange `amq.default`.
fn exchange_name(path: &str) -> &str {
    if path == "amq.default" {
        ""
    } else {
        path
    }
}

fn router(api: Arc<Api>) -> Router {
    let q = "/api/queues/{vhost}/{name}";
    let x = "/api/exchanges/{vhost}/{name}";
    let api_routes = Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/api/overview", get(overview::overview))
        .route("/api/warren/rpc", get(warren::rpc))
        .route("/api/nodes", get(overview::nodes))
        .route("/api/nodes/{node}", get(overview::node))
        .route("/api/whoami", get(overview::whoami))
        .route("/api/healthchecks/node", get(overview::healthcheck))
        .route("/api/aliveness-test/{vhost}", get(messages::aliveness))
        .route("/api/vhosts", get(overview::vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(overview::vhost)
                .put(overview::put_vhost)
                .delete(overview::delete_vhost),
        )
        .route("/api/users", get(overview::users))
        .route("/api/users/{name}", get(overview::user))
        .route("/api/permissions", get(overview::permissions))
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{name}",
            get(connections::one).delete(connections::close),
        )
        .route(
            "/api/connections/{name}/channels",
            get(connections::of_connection),
        )
        .route("/api/channels", get(connections::channels))
        .route("/api/channels/{name}", get(connections::channel))
        .route("/api/consumers", get(connections::consumers))
        .route("/api/consumers/{vhost}", get(connections::consumers_in))
        .route("/api/exchanges", get(resource::list::<Exchanges>))
        .route(
            "/api/exchanges/{vhost}",
            get(resource::list_in::<Exchanges>),
        )
        .route(
            x,
            get(exchanges::one)
                .put(exchanges::declare)
                .delete(exchanges::remove),
        )
        .route(&format!("{x}/publish"), post(messages::publish))
        .route(
            &format!("{x}/bindings/source"),
            get(bindings::from_exchange),
        )
        .route(
            &format!("{x}/bindings/destination"),
            get(bindings::to_exchange),
        )
        .route("/api/queues", get(resource::list::<Queues>))
        .route("/api/queues/{vhost}", get(resource::list_in::<Queues>))
        .route(
            q,
            get(queues::one).put(queues::declare).delete(queues::remove),
        )
        .route(&format!("{q}/contents"), delete(queues::purge))
        .route(&format!("{q}/get"), post(messages::get))
        .route(&format!("{q}/bindings"), get(bindings::to_queue))
        .route("/api/bindings", get(bindings::list))
        .route("/api/bindings/{vhost}", get(bindings::list_in))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}",
            get(bindings::between).post(bindings::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}/{props}",
            get(bindings::one).delete(bindings::remove),
        )
        .route(
            "/api/definitions",
            get(definitions::export).post(definitions::import),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require,
        ));
    api_routes.with_state(api)
}

/// Serve the API on `listener` until shutdown.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: Shutdown,
) {
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "management listener has no address");
            return;
        }
    };
    let api = Arc::new(Api {
        stats: Stats::new(shared.clone()),
        shared,
        addr,
    });
    let app = router(api);
    let done = async move { stop.recv().await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(done)
        .await
    {
        tracing::warn!(error = %e, "management API stopped");
    }
}

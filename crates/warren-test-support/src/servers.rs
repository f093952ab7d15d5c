//! Servers the tests run against a broker.

use std::time::Duration;

use tokio::sync::mpsc;
use warren_rpc::{Request, Response, RpcServer, ServerHandle, Status};

/// A server for `queue` that sends the body of each request on `seen` as it starts
/// working on it, then sleeps that many milliseconds and echoes it.
pub async fn announcing_sleep_server(
    url: &str,
    queue: &str,
    seen: mpsc::UnboundedSender<String>,
) -> ServerHandle {
    RpcServer::new()
        .route(queue, move |req: Request| {
            let seen = seen.clone();
            async move {
                let body = String::from_utf8_lossy(&req.body).into_owned();
                let _ = seen.send(body.clone());
                let ms: u64 = body
                    .parse()
                    .map_err(|_| Status::invalid_argument("send milliseconds"))?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, Status>(Response::text(body))
            }
        })
        .start(url)
        .await
        .expect("server starts")
}

//! The README's library tour. Run it against a broker:
//! `cargo run -p warren-rpc --example tour -- amqp://guest:guest@127.0.0.1:5672/%2f`
//! (start one with `cargo run --release -- broker` or use RabbitMQ).

use std::time::Duration;

use warren_rpc::{
    services::fib, CallOptions, Error, Request, Response, RpcClient, RpcServer, Status,
};

#[tokio::main]
async fn main() -> warren_rpc::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| warren_rpc::DEFAULT_URL.to_owned());

    // A server: one handler per queue, prefetch = concurrency, reply before ack.
    let server = RpcServer::new()
        .concurrency(16)
        .route(fib::QUEUE, fib::handle)
        .route("greet", |req: Request| async move {
            let name = String::from_utf8(req.body)
                .map_err(|_| Status::invalid_argument("send a UTF-8 name"))?;
            Ok(Response::text(format!("hello {name}")))
        })
        .start(&url)
        .await?;

    // A client: one connection, any number of concurrent calls.
    let client = RpcClient::connect(&url).await?;
    let reply = client.call(fib::QUEUE, "30").await?;
    println!("fib(30) = {}", reply.text()?);

    let opts = CallOptions::new()
        .timeout(Duration::from_millis(500))
        .idempotent(true);
    match client.call_with("greet", "you", opts).await {
        Ok(reply) => println!("{}", reply.text()?),
        Err(Error::Remote(status)) => eprintln!("the server said {status}"),
        Err(Error::NoRoute { .. }) => eprintln!("nobody serves `greet`"),
        Err(Error::Timeout { .. }) => eprintln!("too slow"),
        Err(e) => eprintln!("{e}"),
    }

    client.shutdown().await?;
    server.shutdown().await // finishes and answers the calls it started
}

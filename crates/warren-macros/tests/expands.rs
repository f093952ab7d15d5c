//! Services that must compile: the generated server and client, with every kind of
//! method the attribute accepts, checked by the type system (no broker needed).

use warren_rpc::{CallOptions, Context, Status};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// A public service with every kind of method.
#[warren_rpc::service(queue = "geometry.v1")]
pub trait Geometry {
    /// A plain result.
    async fn length(&self, p: Point) -> f64;
    /// A fallible result with the context first.
    async fn scale(&self, ctx: &Context, p: Point, k: f64) -> Result<Point, Status>;
    /// No arguments, no result.
    async fn ping(&self);
    /// A renamed method with a parameter named like the options.
    #[method(name = "Translate")]
    async fn translate(&self, p: Point, options: Vec<f64>) -> Point;
    /// Raw identifiers and a serde attribute.
    async fn r#type(&self, #[serde(rename = "kind")] r#type: String) -> String;
    /// A result whose error converts into a status.
    async fn checked(&self, n: i32) -> Result<i32, MyError>;
}

#[derive(Debug)]
pub struct MyError;

impl From<MyError> for Status {
    fn from(_: MyError) -> Status {
        Status::invalid_argument("mine")
    }
}

struct Impl;

impl Geometry for Impl {
    async fn length(&self, p: Point) -> f64 {
        p.x.hypot(p.y)
    }
    async fn scale(&self, _ctx: &Context, p: Point, k: f64) -> Result<Point, Status> {
        Ok(Point {
            x: p.x * k,
            y: p.y * k,
        })
    }
    async fn ping(&self) {}
    async fn translate(&self, p: Point, _options: Vec<f64>) -> Point {
        p
    }
    async fn r#type(&self, r#type: String) -> String {
        r#type
    }
    async fn checked(&self, n: i32) -> Result<i32, MyError> {
        if n < 0 {
            Err(MyError)
        } else {
            Ok(n)
        }
    }
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn generated_items_have_the_documented_names_and_types() {
    use warren_rpc::typed::Service;
    let server = GeometryServer::new(Impl);
    assert_eq!(server.name(), "geometry.v1");
    assert_eq!(server.queue_spec().name, "geometry.v1");
    assert_eq!(
        server.methods(),
        ["length", "scale", "ping", "Translate", "type", "checked"]
    );
    assert_eq!(GeometryClient::QUEUE, "geometry.v1");
    assert_eq!(GeometryClient::METHODS, server.methods());
    let moved = server.queue(warren_rpc::QueueSpec::quorum("elsewhere"));
    assert_eq!(moved.queue_spec().name, "elsewhere");
    let _ = warren_rpc::RpcServer::new().serve(moved);
}

/// Client methods have the declared types and their futures are `Send`.
#[allow(dead_code)]
async fn client_signatures(client: &warren_rpc::RpcClient) -> warren_rpc::Result<()> {
    let g = GeometryClient::new(client);
    let _: f64 = g.length(Point { x: 3.0, y: 4.0 }).await?;
    let _: Point = g
        .scale_with(CallOptions::new(), Point { x: 1.0, y: 1.0 }, 2.0)
        .await?;
    let _: () = g.ping().await?;
    let _: Point = g
        .translate_with(CallOptions::new(), Point { x: 0.0, y: 0.0 }, vec![])
        .await?;
    let _: String = g.r#type("x".into()).await?;
    let _: i32 = g.checked(1).await?;
    let future = g.length(Point { x: 0.0, y: 0.0 });
    assert_send(&future);
    Ok(())
}

#[test]
fn default_queue_is_the_trait_name_in_snake_case() {
    #[allow(dead_code)] // only the client's constant is used
    #[warren_rpc::service]
    trait UserDirectory {
        async fn lookup(&self, id: u64) -> Option<String>;
    }
    assert_eq!(UserDirectoryClient::QUEUE, "user_directory");
}

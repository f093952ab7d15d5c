//! Typed services (SPEC v2): the runtime half of [`#[warren_rpc::service]`](crate::service).
//!
//! A typed call is an ordinary call whose AMQP `type` property names the method and
//! whose body is the arguments as one map keyed by parameter name, in the codec its
//! `content_type` names (see [`Codec`]). The reply body is the return value alone.
//!
//! The macro generates only the glue that needs the trait's types; everything else is
//! here and usable without it: [`call`] makes a typed call, [`handle`] serves one
//! method, and [`Service`] + [`RpcServer::serve`] route a queue's calls by method.

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::{CallOptions, RpcClient};
use crate::codec::Codec;
use crate::context::{Context, Request, Response};
use crate::error::{Error, Result};
use crate::handler::{Handler, HandlerFuture};
use crate::queue::QueueSpec;
use crate::server::RpcServer;
use crate::status::Status;

/// A set of methods served on one queue, dispatched by the request's `type`.
///
/// `#[warren_rpc::service]` implements it for the `<Trait>Server` it generates; it
/// can also be written by hand with [`handle`] for each method.
pub trait Service: Send + Sync + 'static {
    /// The service's name, as in messages (the default queue, in snake case).
    fn name(&self) -> &str;

    /// The queue the service is served on, and how it is declared.
    fn queue_spec(&self) -> QueueSpec;

    /// The wire names of its methods.
    fn methods(&self) -> &[&'static str];

    /// Starts serving `request` with `method`; `None` if there is no such method.
    fn call(&self, method: &str, request: Request) -> Option<HandlerFuture>;
}

impl RpcServer {
    /// Serves a typed service on its queue: each request goes to the method its AMQP
    /// `type` names; a request without one, or naming no method of the service, gets
    /// `unimplemented`.
    ///
    /// ```no_run
    /// use warren_rpc::services::calc::{CalcServer, Calculator};
    /// # async fn demo() -> warren_rpc::Result<()> {
    /// let server = warren_rpc::RpcServer::new()
    ///     .serve(CalcServer::new(Calculator))
    ///     .start("amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .await?;
    /// # server.shutdown().await }
    /// ```
    pub fn serve(self, service: impl Service) -> Self {
        let queue = service.queue_spec();
        self.route(queue, Dispatch(Arc::new(service)))
    }
}

/// The [`Handler`] of a service's queue.
struct Dispatch<S>(Arc<S>);

impl<S: Service> Handler for Dispatch<S> {
    fn call(&self, request: Request) -> HandlerFuture {
        let service = self.0.as_ref();
        let Some(method) = request.method.clone() else {
            return failed(Status::unimplemented(format!(
                "`{}` is a typed service: name the method in the AMQP `type` property \
                 (one of: {})",
                service.name(),
                service.methods().join(", ")
            )));
        };
        service.call(&method, request).unwrap_or_else(|| {
            failed(Status::unimplemented(format!(
                "service `{}` has no method `{method}`; its methods: {}",
                service.name(),
                service.methods().join(", ")
            )))
        })
    }
}

fn failed(status: Status) -> HandlerFuture {
    Box::pin(std::future::ready(Err(status)))
}

/// Serves one typed method: decodes the arguments `A` from the request body in the
/// codec its `content_type` names, runs `f` with them and the call's [`Context`], and
/// encodes what it returns in the same codec.
///
/// A `content_type` that is not a codec, a body that does not decode, a missing or
/// mistyped argument: `invalid_argument`, naming the field path. An empty body is
/// read as an empty map, so a method without arguments accepts it.
///
/// ```
/// use warren_rpc::{typed, Request, RpcServer, Status};
///
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// let server = RpcServer::new().route("adder", |request: Request| {
///     typed::handle("add", request, |args: Add, _ctx| async move {
///         Ok::<_, Status>(args.a + args.b)
///     })
/// });
/// ```
pub fn handle<A, T, F, Fut>(method: &str, request: Request, f: F) -> HandlerFuture
where
    A: DeserializeOwned,
    T: Serialize + 'static,
    F: FnOnce(A, Context) -> Fut,
    Fut: Future<Output = Result<T, Status>> + Send + 'static,
{
    let Request {
        context,
        body,
        content_type,
        ..
    } = request;
    let codec = match Codec::from_content_type(content_type.as_deref()) {
        Ok(codec) => codec,
        Err(e) => return failed(Status::invalid_argument(e.to_string())),
    };
    let body = if body.is_empty() {
        codec.empty_map()
    } else {
        &body[..]
    };
    let args = match codec.decode::<A>(body) {
        Ok(args) => args,
        Err(e) => {
            return failed(Status::invalid_argument(format!(
                "bad arguments to `{method}`: {e}"
            )))
        }
    };
    let work = f(args, context);
    let method = method.to_owned();
    Box::pin(async move {
        let value = work.await?;
        let body = codec
            .encode(&value)
            .map_err(|e| Status::internal(format!("cannot encode the reply of `{method}`: {e}")))?;
        Ok(Response {
            body,
            content_type: Some(codec.content_type().to_owned()),
        })
    })
}

/// Makes a typed call: `method` on the service behind `queue`, with `args` (a struct
/// or map keyed by parameter name) encoded in the codec `options`' `content_type`
/// names (JSON by default), and the reply decoded as `T`.
///
/// Fails as [`RpcClient::call_with`] does, and also with [`Error::InvalidArgument`]
/// when `args` cannot be encoded or the content type is not a codec, and with
/// [`Error::Decode`] when the reply does not decode as `T`.
///
/// ```no_run
/// # async fn demo(client: &warren_rpc::RpcClient) -> warren_rpc::Result<()> {
/// use warren_rpc::{typed, CallOptions};
/// let sum: i64 = typed::call(client, "calc", "add", &serde_json::json!({"a": 2, "b": 3}),
///     CallOptions::new()).await?;
/// assert_eq!(sum, 5);
/// # Ok(()) }
/// ```
pub async fn call<A, T>(
    client: &RpcClient,
    queue: &str,
    method: &str,
    args: &A,
    options: CallOptions,
) -> Result<T>
where
    A: Serialize + ?Sized,
    T: DeserializeOwned,
{
    let codec = Codec::from_content_type(options.content_type.as_deref())
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let body = codec.encode(args).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot encode the arguments of `{queue}.{method}`: {e}"
        ))
    })?;
    let options = options.method(method).content_type(codec.content_type());
    let reply = client.call_with(queue, body, options).await?;
    // Peers answer in the request's codec; trust the reply's label when it names one.
    let reply_codec = Codec::from_content_type(reply.content_type.as_deref()).unwrap_or(codec);
    reply_codec
        .decode(&reply.body)
        .map_err(|source| Error::Decode {
            queue: queue.to_owned(),
            method: method.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }

    fn request(body: &[u8], content_type: Option<&str>) -> Request {
        Request {
            context: Context::default(),
            body: body.to_vec(),
            content_type: content_type.map(str::to_owned),
            method: Some("add".to_owned()),
        }
    }

    async fn add(request: Request) -> Result<Response, Status> {
        handle("add", request, |args: Add, _ctx| async move {
            Ok::<_, Status>(args.a + args.b)
        })
        .await
    }

    #[tokio::test]
    async fn answers_in_the_request_codec() {
        for codec in Codec::ALL {
            let body = codec.encode(&serde_json::json!({"a": 2, "b": 3})).unwrap();
            let reply = add(request(&body, Some(codec.content_type())))
                .await
                .unwrap();
            assert_eq!(reply.content_type.as_deref(), Some(codec.content_type()));
            assert_eq!(codec.decode::<i64>(&reply.body).unwrap(), 5);
        }
        let reply = add(request(br#"{"a":2,"b":3}"#, None)).await.unwrap();
        assert_eq!(reply.body, b"5", "JSON when content_type is absent");
    }

    #[tokio::test]
    async fn bad_arguments_are_invalid_argument_with_the_field() {
        let cases: [(&[u8], Option<&str>, &str); 4] = [
            (br#"{"a":2}"#, None, "missing field `b`"),
            (br#"{"a":2,"b":"x"}"#, None, "at `b`"),
            (b"", None, "missing field `a`"),
            (br#"{"a":2,"b":3}"#, Some("text/plain"), "text/plain"),
        ];
        for (body, ct, needle) in cases {
            let err = add(request(body, ct)).await.unwrap_err();
            assert_eq!(err.code(), crate::Code::InvalidArgument);
            assert!(
                err.message().contains(needle),
                "{needle}: {}",
                err.message()
            );
        }
    }

    struct Echo;

    impl Service for Echo {
        fn name(&self) -> &str {
            "echo"
        }
        fn queue_spec(&self) -> QueueSpec {
            QueueSpec::tutorial("echo")
        }
        fn methods(&self) -> &[&'static str] {
            &["add"]
        }
        fn call(&self, method: &str, request: Request) -> Option<HandlerFuture> {
            (method == "add").then(|| Box::pin(add(request)) as HandlerFuture)
        }
    }

    #[tokio::test]
    async fn unknown_or_missing_method_is_unimplemented() {
        let dispatch = Dispatch(Arc::new(Echo));
        let mut req = request(br#"{"a":1,"b":1}"#, None);
        assert_eq!(
            Handler::call(&dispatch, req.clone()).await.unwrap().body,
            b"2"
        );
        req.method = Some("mul".to_owned());
        let err = Handler::call(&dispatch, req.clone()).await.unwrap_err();
        assert_eq!(err.code(), crate::Code::Unimplemented);
        assert!(err.message().contains("`mul`") && err.message().contains("add"));
        req.method = None;
        let err = Handler::call(&dispatch, req).await.unwrap_err();
        assert_eq!(err.code(), crate::Code::Unimplemented);
        assert!(err.message().contains("`type`"), "{}", err.message());
    }
}

//! The [`Handler`] trait: an async function from [`Request`] to [`Response`] or [`Status`].

use std::future::Future;
use std::pin::Pin;

use crate::context::{Request, Response};
use crate::status::Status;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, Status>> + Send + 'static>>;

/// Serves the calls of one queue. Implemented for every
/// `Fn(Request) -> impl Future<Output = Result<Response, Status>>`.
pub trait Handler: Send + Sync + 'static {
    /// Handles one call.
    fn call(&self, request: Request) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, Status>> + Send + 'static,
{
    fn call(&self, request: Request) -> HandlerFuture {
        Box::pin(self(request))
    }
}

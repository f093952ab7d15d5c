//! `#[warren_rpc::service]`: turns a trait of `async fn`s into a typed Warren service,
//! with a server adapter (`<Trait>Server`) and a client stub (`<Trait>Client`).
//!
//! Use it through `warren_rpc::service`; the generated code calls only warren-rpc's
//! public API (`warren_rpc::typed`), so this crate holds the parsing and the code
//! that needs the trait's own types, nothing more. See warren-rpc's crate docs for
//! the attribute's options and the wire format.

mod expand;
mod model;

use proc_macro::TokenStream;

/// Makes a trait of `async fn`s a typed Warren service. Generates `<Trait>Server`
/// (serve with `RpcServer::serve`) and `<Trait>Client` (typed methods, each with a
/// `<method>_with(CallOptions, ..)` variant).
///
/// Options: `#[warren_rpc::service(queue = "name")]` sets the queue (default: the
/// trait's name in snake case); `#[method(name = "name")]` on a method sets its wire
/// name (default: the method's name). A method may take `ctx: &Context` as its first
/// parameter (not sent on the wire) and return `T` or `Result<T, E>` with
/// `E: Into<Status>`; arguments and results are any serde types.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::service(attr.into(), item.into()).into()
}

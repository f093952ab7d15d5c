//! Writes the code of a parsed service: the trait with `Send` futures, the
//! `<Trait>Server` adapter and the `<Trait>Client` stub. Each method's glue is an
//! argument struct and a call into `warren_rpc::typed` (`handle` on the server,
//! `call` on the client); the work itself is done there.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemTrait, ReturnType, TraitItem};

use crate::model::{self, Method, Output, Service};

/// The attribute's expansion: the generated code, or the errors and the trait as it
/// was written (so uses of the trait elsewhere raise no follow-on errors).
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let queue = match model::parse_options(attr) {
        Ok(queue) => queue,
        Err(e) => {
            let e = e.to_compile_error();
            return quote!(#e #item);
        }
    };
    let trait_item: ItemTrait = match syn::parse2(item.clone()) {
        Ok(t) => t,
        Err(_) => {
            let e = syn::Error::new(
                item.span(),
                "`#[warren_rpc::service]` goes on a trait of `async fn` methods",
            )
            .to_compile_error();
            return quote!(#e #item);
        }
    };
    match model::parse(queue, trait_item) {
        Ok(service) => generate(&service),
        Err((e, cleaned)) => {
            let e = e.to_compile_error();
            quote!(#e #cleaned)
        }
    }
}

fn generate(service: &Service) -> TokenStream {
    let trait_item = send_trait(&service.item);
    let server = server(service);
    let client = client(service);
    quote! {
        #trait_item
        #server
        #client
    }
}

/// The trait as written, with `Send + Sync + 'static` added to its bounds and each
/// `async fn` declared as returning `impl Future + Send` (implementations may still
/// write `async fn`), so a server can run calls on any worker thread.
fn send_trait(item: &ItemTrait) -> ItemTrait {
    let mut item = item.clone();
    item.colon_token.get_or_insert_with(Default::default);
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Send));
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Sync));
    item.supertraits.push(syn::parse_quote!('static));
    for entry in &mut item.items {
        if let TraitItem::Fn(f) = entry {
            f.sig.asyncness = None;
            let (ret, span) = match &f.sig.output {
                ReturnType::Default => (quote!(()), f.sig.ident.span()),
                ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
            };
            f.sig.output = syn::parse_quote_spanned! {span=>
                -> impl ::core::future::Future<Output = #ret> + ::core::marker::Send
            };
        }
    }
    item
}

fn server(service: &Service) -> TokenStream {
    let trait_ident = &service.item.ident;
    let vis = &service.item.vis;
    let name = format_ident!("{}Server", trait_ident);
    let queue = &service.queue;
    let wires: Vec<&str> = service.methods.iter().map(|m| m.wire.as_str()).collect();
    let arms = service.methods.iter().map(|m| server_arm(trait_ident, m));
    let doc = format!(
        " Serves [`{trait_ident}`] on the queue `{queue}`: \
         `RpcServer::new().serve({name}::new(service))`."
    );
    quote! {
        #[doc = #doc]
        #vis struct #name<T> {
            service: ::std::sync::Arc<T>,
            queue: ::warren_rpc::QueueSpec,
        }

        impl<T: #trait_ident> #name<T> {
            #[doc = concat!(
                " Serves `service` on the queue `", #queue,
                "`, declared as RabbitMQ's tutorial declares `rpc_queue`."
            )]
            pub fn new(service: T) -> Self {
                Self::from_arc(::std::sync::Arc::new(service))
            }

            /// Serves a service value shared with other code.
            pub fn from_arc(service: ::std::sync::Arc<T>) -> Self {
                Self {
                    service,
                    queue: ::warren_rpc::QueueSpec::tutorial(#queue),
                }
            }

            /// Serves on another queue, or declares it otherwise
            /// (e.g. `QueueSpec::quorum`).
            pub fn queue(mut self, queue: impl ::core::convert::Into<::warren_rpc::QueueSpec>) -> Self {
                self.queue = queue.into();
                self
            }
        }

        impl<T: #trait_ident> ::warren_rpc::typed::Service for #name<T> {
            fn name(&self) -> &str {
                #queue
            }

            fn queue_spec(&self) -> ::warren_rpc::QueueSpec {
                ::core::clone::Clone::clone(&self.queue)
            }

            fn methods(&self) -> &[&'static str] {
                &[#(#wires),*]
            }

            fn call(
                &self,
                method: &str,
                request: ::warren_rpc::Request,
            ) -> ::core::option::Option<::warren_rpc::HandlerFuture> {
                match method {
                    #(#arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}

/// The argument struct's fields, with the spans of the user's parameters so that a
/// type that is not serde points at the parameter.
fn fields(m: &Method) -> TokenStream {
    let fields = m.args.iter().map(|a| {
        let (ident, ty, serde) = (&a.ident, &a.ty, &a.serde);
        quote_spanned!(ty.span()=> #(#serde)* #ident: #ty,)
    });
    quote!(#(#fields)*)
}

fn server_arm(trait_ident: &syn::Ident, m: &Method) -> TokenStream {
    let wire = &m.wire;
    let ident = &m.ident;
    let fields = fields(m);
    let names: Vec<&syn::Ident> = m.args.iter().map(|a| &a.ident).collect();
    let (ctx_pat, ctx_arg) = if m.takes_context {
        (quote!(__warren_ctx), quote!(&__warren_ctx,))
    } else {
        (quote!(_), quote!())
    };
    let invoke = quote! {
        <T as #trait_ident>::#ident(&*__warren_service, #ctx_arg #(#names),*).await
    };
    let outcome = match &m.output {
        Output::Plain(ty) => quote_spanned! {ty.span()=>
            ::core::result::Result::Ok::<#ty, ::warren_rpc::Status>(#invoke)
        },
        Output::Result { err, .. } => quote_spanned! {err.span()=>
            ::core::result::Result::map_err(
                #invoke,
                <#err as ::core::convert::Into<::warren_rpc::Status>>::into,
            )
        },
    };
    let args = args_ident(m);
    let derive = derive(m, quote!(Deserialize));
    // Spanned at the result type: a result that is not serde is reported there.
    let handle = quote_spanned! {ok_type(m).span()=>
        ::warren_rpc::typed::handle(
            #wire,
            request,
            move |__warren_args: #args, #ctx_pat: ::warren_rpc::Context| async move {
                let #args { #(#names),* } = __warren_args;
                #outcome
            },
        )
    };
    quote! {
        #wire => {
            #derive
            struct #args { #fields }
            let __warren_service = ::std::sync::Arc::clone(&self.service);
            ::core::option::Option::Some(#handle)
        }
    }
}

fn client(service: &Service) -> TokenStream {
    let trait_ident = &service.item.ident;
    let vis = &service.item.vis;
    let name = format_ident!("{}Client", trait_ident);
    let queue = &service.queue;
    let wires: Vec<&str> = service.methods.iter().map(|m| m.wire.as_str()).collect();
    let methods = service
        .methods
        .iter()
        .map(|m| client_methods(trait_ident, queue, m));
    let doc = format!(
        " A typed client of [`{trait_ident}`], calling the queue `{queue}`: \
         `{name}::new(&rpc_client)`. Cheap to clone."
    );
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone)]
        #vis struct #name {
            client: ::warren_rpc::RpcClient,
            queue: ::std::string::String,
        }

        impl #name {
            /// The queue the service is served on by default.
            pub const QUEUE: &'static str = #queue;
            /// The wire names of its methods (the AMQP `type` of each call).
            pub const METHODS: &'static [&'static str] = &[#(#wires),*];

            /// A client calling the service on its default queue through `client`.
            pub fn new(client: &::warren_rpc::RpcClient) -> Self {
                Self::with_queue(client, Self::QUEUE)
            }

            /// A client calling the service served on `queue`.
            pub fn with_queue(
                client: &::warren_rpc::RpcClient,
                queue: impl ::core::convert::Into<::std::string::String>,
            ) -> Self {
                Self {
                    client: ::core::clone::Clone::clone(client),
                    queue: queue.into(),
                }
            }

            /// The queue this client calls.
            pub fn queue(&self) -> &str {
                &self.queue
            }

            /// The connection this client calls through.
            pub fn rpc_client(&self) -> &::warren_rpc::RpcClient {
                &self.client
            }

            #(#methods)*
        }
    }
}

fn client_methods(trait_ident: &syn::Ident, queue: &str, m: &Method) -> TokenStream {
    let ident = &m.ident;
    let with = format_ident!("{}_with", m.ident);
    let wire = &m.wire;
    let docs = &m.docs;
    let fields = fields(m);
    let names: Vec<&syn::Ident> = m.args.iter().map(|a| &a.ident).collect();
    let params = m.args.iter().map(|a| {
        let (ident, ty) = (&a.ident, &a.ty);
        quote!(#ident: #ty)
    });
    let params: Vec<TokenStream> = params.collect();
    let options = options_ident(m);
    let ok = ok_type(m);
    let args = args_ident(m);
    let derive = derive(m, quote!(Serialize));
    // Spanned at the result type: a result that is not serde is reported there.
    let call = quote_spanned! {ok.span()=>
        ::warren_rpc::typed::call(
            &self.client,
            &self.queue,
            #wire,
            &#args { #(#names),* },
            #options,
        )
    };
    let call_doc = format!(" Calls `{wire}` on the `{queue}` service (`{trait_ident}::{ident}`).");
    let with_doc = format!(
        " [`Self::{ident}`] with call options: timeout, codec (`content_type`), \
         the deadline of a request being served (`CallOptions::from_context`)."
    );
    let span = Span::call_site();
    quote_spanned! {span=>
        #[doc = #call_doc]
        #[doc = ""]
        #(#docs)*
        pub async fn #ident(&self, #(#params),*) -> ::warren_rpc::Result<#ok> {
            self.#with(::warren_rpc::CallOptions::new(), #(#names),*).await
        }

        #[doc = #with_doc]
        pub async fn #with(
            &self,
            #options: ::warren_rpc::CallOptions,
            #(#params),*
        ) -> ::warren_rpc::Result<#ok> {
            #derive
            struct #args { #fields }
            #call.await
        }
    }
}

/// The type a successful call yields: `T` of `Result<T, E>`, else the declared type.
fn ok_type(m: &Method) -> &syn::Type {
    match &m.output {
        Output::Plain(ty) => ty,
        Output::Result { ok, .. } => ok,
    }
}

/// `#[derive(serde::<what>)]` through warren-rpc's serde, spanned at the method's name
/// (errors serde's derived code reports at its call site point there).
fn derive(m: &Method, what: TokenStream) -> TokenStream {
    quote_spanned! {m.ident.span()=>
        #[derive(::warren_rpc::serde::#what)]
        #[serde(crate = "::warren_rpc::serde")]
    }
}

/// The argument struct's name, spanned at the method's name so that errors in the
/// derived code point at the method rather than at the attribute.
fn args_ident(m: &Method) -> syn::Ident {
    syn::Ident::new("__WarrenArgs", m.ident.span())
}

/// A name for the options parameter that no argument already has.
fn options_ident(m: &Method) -> syn::Ident {
    ["options", "call_options", "__warren_options"]
        .iter()
        .find(|candidate| !m.args.iter().any(|a| a.ident == candidate))
        .map_or_else(
            || format_ident!("__warren_call_options"),
            |name| format_ident!("{}", name),
        )
}

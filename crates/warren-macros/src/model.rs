//! Reads a service trait into a [`Service`]: its queue, and each method's wire name,
//! arguments and result, rejecting (with spans on the user's code) what cannot cross
//! the wire: non-async methods, generics, borrowed arguments, patterns.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, ItemTrait, LitStr, Pat, PathArguments, ReturnType,
    TraitItem, Type,
};

/// A parsed service trait.
pub struct Service {
    /// The trait, with Warren's helper attributes removed.
    pub item: ItemTrait,
    /// The queue: the `queue = ".."` option, else the trait's name in snake case.
    pub queue: String,
    /// Its methods, in declaration order.
    pub methods: Vec<Method>,
}

/// One `async fn` of the trait.
pub struct Method {
    /// The Rust name.
    pub ident: syn::Ident,
    /// The name on the wire (the AMQP `type`).
    pub wire: String,
    /// Its doc comments, copied onto the client's methods.
    pub docs: Vec<Attribute>,
    /// Whether the first parameter is `&Context` (passed by the server, not sent).
    pub takes_context: bool,
    /// The arguments sent on the wire.
    pub args: Vec<Arg>,
    /// What the method returns.
    pub output: Output,
}

/// One argument: a key of the request body.
pub struct Arg {
    /// The parameter's name (the key).
    pub ident: syn::Ident,
    /// Its type.
    pub ty: Type,
    /// `#[serde(..)]` attributes written on the parameter, applied to its field.
    pub serde: Vec<Attribute>,
}

/// A method's result.
// Built once per method at compile time: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Output {
    /// A plain value: the call always succeeds.
    Plain(Type),
    /// `Result<ok, err>` with `err: Into<Status>`.
    Result { ok: Type, err: Type },
}

/// Client stub names the generated code defines itself; a method cannot take them.
const RESERVED: &[&str] = &["new", "with_queue", "queue", "rpc_client"];

/// Collects every error instead of stopping at the first.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let error = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// An error spanning all of `tokens` (first to last token, also on stable).
    fn push_spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push_error(syn::Error::new_spanned(tokens, message));
    }

    fn push_error(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
}

/// The `queue = ".."` option of the attribute.
pub fn parse_options(attr: TokenStream) -> syn::Result<Option<LitStr>> {
    let mut queue = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("queue") {
            queue = Some(meta.value()?.parse::<LitStr>()?);
            Ok(())
        } else {
            Err(meta
                .error("unknown option: `#[warren_rpc::service]` takes only `queue = \"name\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(queue)
}

/// Reads the trait. On error, returns the errors together with the trait cleaned of
/// Warren's helper attributes, so the rest of the crate still sees it.
// The error hands the trait back whole, once per macro call: no point boxing it.
#[allow(clippy::result_large_err)]
pub fn parse(
    queue: Option<LitStr>,
    mut item: ItemTrait,
) -> Result<Service, (syn::Error, ItemTrait)> {
    let mut errors = Errors::default();
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.push_spanned(
            &item.generics,
            "a service trait cannot be generic: its methods' types cross the wire, so they \
             must be concrete",
        );
    }
    if let Some(unsafety) = item.unsafety {
        errors.push(unsafety.span(), "a service trait cannot be `unsafe`");
    }
    let queue = match queue {
        Some(lit) => {
            let name = lit.value();
            if name.is_empty() || name.len() > 255 {
                errors.push(lit.span(), "a queue name is 1 to 255 bytes long");
            }
            name
        }
        None => heck::ToSnakeCase::to_snake_case(item.ident.to_string().as_str()),
    };
    let mut methods = Vec::new();
    for entry in &mut item.items {
        match entry {
            TraitItem::Fn(f) => {
                if let Some(method) = parse_method(f, &mut errors) {
                    methods.push(method);
                }
            }
            other => errors.push(
                other.span(),
                "a service trait holds only `async fn` methods (no types, constants or macros)",
            ),
        }
    }
    check_names(&methods, &mut errors);
    match errors.0 {
        Some(e) => Err((e, item)),
        None => Ok(Service {
            item,
            queue,
            methods,
        }),
    }
}

fn parse_method(f: &mut syn::TraitItemFn, errors: &mut Errors) -> Option<Method> {
    let before = errors.0.is_some();
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        errors.push(
            sig.fn_token.span(),
            format!(
                "service methods must be `async fn`: write `async fn {}(..)`",
                sig.ident
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push_spanned(
            &sig.generics,
            "service methods cannot be generic: their arguments and results cross the \
             wire, so their types must be concrete",
        );
    }
    if let Some(unsafety) = sig.unsafety {
        errors.push(unsafety.span(), "service methods cannot be `unsafe`");
    }
    if let Some(constness) = sig.constness {
        errors.push(constness.span(), "service methods cannot be `const`");
    }
    if let Some(abi) = &sig.abi {
        errors.push(abi.span(), "service methods cannot name an ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic.span(), "service methods cannot be variadic");
    }
    if let Some(body) = &f.default {
        errors.push(
            body.span(),
            "a service method has no body in the trait: implement it in `impl Trait for YourType`",
        );
    }
    let wire = method_name(&mut f.attrs, &f.sig.ident, errors);
    let docs = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();

    let mut inputs = f.sig.inputs.iter_mut();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(FnArg::Receiver(r)) => errors.push(
            r.span(),
            "service methods take `&self`: one service value serves many calls at once",
        ),
        _ => errors.push(
            f.sig.ident.span(),
            "service methods take `&self` first: one service value serves many calls at once",
        ),
    }
    let mut takes_context = false;
    let mut args = Vec::new();
    for (i, input) in inputs.enumerate() {
        let FnArg::Typed(pat_type) = input else {
            continue;
        };
        let serde = take_serde_attrs(&mut pat_type.attrs);
        if is_context(&pat_type.ty) {
            if i == 0 {
                takes_context = true;
            } else {
                errors.push_spanned(
                    &pat_type.ty,
                    "`&Context` is passed by the server, not sent: make it the first \
                     parameter after `&self`",
                );
            }
            continue;
        }
        let ident = match &*pat_type.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                errors.push_spanned(
                    other,
                    "arguments of service methods are plain names: each is a key of the \
                     request body",
                );
                continue;
            }
        };
        match &*pat_type.ty {
            Type::Reference(r) => errors.push_spanned(
                r,
                "arguments cross the wire, so they are owned values: take `String` \
                 instead of `&str`, `Vec<T>` instead of `&[T]`",
            ),
            Type::ImplTrait(t) => errors.push_spanned(
                t,
                "arguments cross the wire, so their types are concrete serde types, not \
                 `impl Trait`",
            ),
            _ => {}
        }
        args.push(Arg {
            ident,
            ty: (*pat_type.ty).clone(),
            serde,
        });
    }
    let output = match &f.sig.output {
        ReturnType::Default => Output::Plain(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => match result_parts(ty) {
            Ok(Some((ok, err))) => Output::Result { ok, err },
            Ok(None) => Output::Plain((**ty).clone()),
            Err(e) => {
                errors.push_error(e);
                Output::Plain((**ty).clone())
            }
        },
    };
    if errors.0.is_some() && !before {
        return None;
    }
    Some(Method {
        ident: f.sig.ident.clone(),
        wire,
        docs,
        takes_context,
        args,
        output,
    })
}

/// The wire name: `#[method(name = "..")]` (removed from the attributes), else the
/// method's own name.
fn method_name(attrs: &mut Vec<Attribute>, ident: &syn::Ident, errors: &mut Errors) -> String {
    let mut wire = ident.to_string();
    if let Some(raw) = wire.strip_prefix("r#") {
        wire = raw.to_owned();
    }
    attrs.retain(|attr| {
        if !attr.path().is_ident("method") {
            return true;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() || lit.value().len() > 255 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "a method name is 1 to 255 bytes long",
                    ));
                }
                wire = lit.value();
                Ok(())
            } else {
                Err(meta.error("unknown option: `#[method]` takes only `name = \"name\"`"))
            }
        });
        if let Err(e) = parsed {
            errors.push_error(e);
        }
        false
    });
    wire
}

/// Removes `#[serde(..)]` from a parameter (a trait declaration cannot keep it) and
/// returns them for the argument's field.
fn take_serde_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (serde, rest): (Vec<_>, Vec<_>) = attrs.drain(..).partition(|a| a.path().is_ident("serde"));
    *attrs = rest;
    serde
}

/// `&Context` or `&path::to::Context`.
fn is_context(ty: &Type) -> bool {
    let Type::Reference(r) = ty else {
        return false;
    };
    if r.mutability.is_some() {
        return false;
    }
    let Type::Path(p) = &*r.elem else {
        return false;
    };
    p.qself.is_none()
        && p.path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Context" && s.arguments.is_none())
}

/// `Result<T, E>` → `(T, E)`; any other type → `None`.
fn result_parts(ty: &Type) -> syn::Result<Option<(Type, Type)>> {
    let Type::Path(p) = ty else {
        return Ok(None);
    };
    let Some(last) = p.path.segments.last() else {
        return Ok(None);
    };
    if last.ident != "Result" {
        return Ok(None);
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return Ok(None);
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [ok, err] => Ok(Some(((*ok).clone(), (*err).clone()))),
        _ => Err(syn::Error::new_spanned(
            ty,
            "write the result as `Result<T, Status>` (or `Result<T, E>` with \
             `E: Into<Status>`), with both types",
        )),
    }
}

/// Wire names are unique, and Rust names leave room for the client's own items.
fn check_names(methods: &[Method], errors: &mut Errors) {
    for (i, m) in methods.iter().enumerate() {
        if methods[..i].iter().any(|o| o.wire == m.wire) {
            errors.push(
                m.ident.span(),
                format!("two methods are named `{}` on the wire", m.wire),
            );
        }
        let rust = m.ident.to_string();
        let clash = RESERVED.contains(&rust.as_str())
            || methods.iter().any(|o| format!("{}_with", o.ident) == rust);
        if clash {
            errors.push(
                m.ident.span(),
                format!(
                    "the client stub defines `{rust}` itself: rename the method and keep \
                     its wire name with `#[method(name = \"{}\")]`",
                    m.wire
                ),
            );
        }
    }
}

//! The `#[ferret::measure]` attribute. Use it through the `ferret` crate,
//! which re-exports it as `ferret::measure`; the expansion calls `::ferret`.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Block, ImplItem, Item, ItemImpl, LitStr, Signature, Token, Type};

/// Records every call of a function as a Ferret span.
///
/// Works on sync and `async` functions, methods, associated functions and
/// generic functions. While no profiler is installed the cost is one relaxed
/// atomic load per call.
///
/// # Forms
///
/// - `#[ferret::measure]`: the span is named after the function, like
///   `#[tracing::instrument]` names its span: `load`, for a method `get`. So
///   tracing spans and Ferret spans of one program follow one naming rule.
/// - `#[ferret::measure(module_path)]`: the name is qualified by the module
///   path: `my_crate::db::load`. On an `impl` block (see below) methods are
///   also qualified by the impl's type: `my_crate::db::Cache::get`; a method
///   annotated on its own cannot see its type and is named
///   `my_crate::db::get`. Combines with `err`.
/// - `#[ferret::measure("custom")]`: the span is named `custom`, verbatim.
/// - `#[ferret::measure(name = "user:{id}")]`: the name is
///   `format!("user:{id}")`, built at each call from the function's arguments
///   (any `format!` string works; it is not evaluated while no profiler is
///   installed).
/// - `#[ferret::measure(err)]`: for a function returning `Result<T, E>` with
///   `E: Display`, an `Err` return sets the span's status to error and its
///   tag `error` to the error's `Display` text. Combines with a name:
///   `#[ferret::measure("load", err)]`, `#[ferret::measure(name = "q:{id}", err)]`.
///
/// # On an `impl` block
///
/// `#[ferret::measure]` on an `impl` block measures every method in it, named
/// after the method; `#[ferret::measure(module_path)]` names them
/// `module::Type::method` (the type's last path segment, without generic
/// arguments). A method in the block may carry its own
/// `#[ferret::measure(...)]` with any of the options above, or
/// `#[ferret::measure(skip)]` to be left alone.
///
/// # Expansion
///
/// A sync function body becomes `let _g = ferret::span(name); body` (with
/// `err`, the body runs in a closure so that `?` and `return` keep working).
/// An `async fn` body becomes `async move { body }.in_span(name).await`, so
/// the span is recorded once, from the first poll to completion, across
/// awaits and threads, and spans started inside it (or in tasks spawned with
/// `.in_span`) become its children.
///
/// ```ignore
/// #[ferret::measure]
/// fn parse(input: &str) -> usize { input.len() }
///
/// #[ferret::measure(name = "user:{id}", err)]
/// async fn load_user(id: u64) -> Result<String, std::io::Error> { Ok(String::new()) }
/// ```
#[proc_macro_attribute]
pub fn measure(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// How the span is named.
enum NameSpec {
    /// The default: the function name (qualified with `module_path`).
    Default,
    /// A verbatim name.
    Static(LitStr),
    /// A `format!` string.
    Format(LitStr),
}

struct Args {
    name: NameSpec,
    err: bool,
    skip: bool,
    module_path: bool,
}

enum Arg {
    Static(LitStr),
    Format(LitStr),
    Err,
    Skip,
    ModulePath,
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Ok(Arg::Static(input.parse()?));
        }
        let ident: syn::Ident = input.parse()?;
        match ident.to_string().as_str() {
            "name" => {
                input.parse::<Token![=]>()?;
                Ok(Arg::Format(input.parse()?))
            }
            "err" => Ok(Arg::Err),
            "skip" => Ok(Arg::Skip),
            "module_path" => Ok(Arg::ModulePath),
            _ => Err(syn::Error::new(
                ident.span(),
                "expected a name string, `name = \"...\"`, `err`, `module_path` or `skip`",
            )),
        }
    }
}

fn parse_args(tokens: TokenStream2) -> syn::Result<Args> {
    let list = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens)?;
    let mut args = Args {
        name: NameSpec::Default,
        err: false,
        skip: false,
        module_path: false,
    };
    for a in list {
        match a {
            Arg::Static(l) | Arg::Format(l) if !matches!(args.name, NameSpec::Default) => {
                return Err(syn::Error::new(l.span(), "the name is given twice"));
            }
            Arg::Static(l) => args.name = NameSpec::Static(l),
            Arg::Format(l) => args.name = NameSpec::Format(l),
            Arg::Err => args.err = true,
            Arg::Skip => args.skip = true,
            Arg::ModulePath => args.module_path = true,
        }
    }
    if args.module_path && !matches!(args.name, NameSpec::Default) {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "`module_path` qualifies the default name; it does not combine with a given name",
        ));
    }
    Ok(args)
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(attr)?;
    match syn::parse2::<Item>(item)? {
        Item::Fn(mut f) => {
            if args.skip {
                return Ok(f.into_token_stream());
            }
            let fname = f.sig.ident.to_string();
            let default = if args.module_path {
                quote!(::core::concat!(::core::module_path!(), "::", #fname))
            } else {
                quote!(#fname)
            };
            f.block = Box::new(wrap(&f.sig, &f.block, &args, default)?);
            Ok(f.into_token_stream())
        }
        Item::Impl(i) => expand_impl(args, i),
        other => Err(syn::Error::new_spanned(
            other,
            "#[ferret::measure] applies to functions, methods and impl blocks",
        )),
    }
}

fn is_measure_attr(a: &Attribute) -> bool {
    a.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "measure")
}

fn type_label(ty: &Type) -> String {
    match ty {
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(s) => s.ident.to_string(),
            None => String::new(),
        },
        other => other
            .to_token_stream()
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    }
}

fn expand_impl(args: Args, mut imp: ItemImpl) -> syn::Result<TokenStream2> {
    if args.err || args.skip || !matches!(args.name, NameSpec::Default) {
        return Err(syn::Error::new_spanned(
            imp.impl_token,
            "#[ferret::measure] on an impl block takes no option but `module_path`; put the others on its methods",
        ));
    }
    let ty = type_label(&imp.self_ty);
    for item in &mut imp.items {
        let ImplItem::Fn(m) = item else { continue };
        let mut margs = Args {
            name: NameSpec::Default,
            err: false,
            skip: false,
            module_path: args.module_path,
        };
        let mut kept = Vec::with_capacity(m.attrs.len());
        for a in m.attrs.drain(..) {
            if is_measure_attr(&a) {
                margs = match &a.meta {
                    syn::Meta::Path(_) => margs,
                    syn::Meta::List(l) => {
                        let mut m = parse_args(l.tokens.clone())?;
                        m.module_path |= args.module_path;
                        m
                    }
                    syn::Meta::NameValue(nv) => {
                        return Err(syn::Error::new_spanned(nv, "use #[measure(...)]"))
                    }
                };
            } else {
                kept.push(a);
            }
        }
        m.attrs = kept;
        if margs.skip {
            continue;
        }
        let mname = m.sig.ident.to_string();
        let default = if margs.module_path {
            quote!(::core::concat!(
                ::core::module_path!(),
                "::",
                #ty,
                "::",
                #mname
            ))
        } else {
            quote!(#mname)
        };
        m.block = wrap(&m.sig, &m.block, &margs, default)?;
    }
    Ok(imp.into_token_stream())
}

/// The new body of a measured function.
fn wrap(sig: &Signature, block: &Block, args: &Args, default: TokenStream2) -> syn::Result<Block> {
    if sig.constness.is_some() {
        return Err(syn::Error::new_spanned(
            sig.constness,
            "#[ferret::measure] cannot measure a const fn",
        ));
    }
    let name = match &args.name {
        NameSpec::Default => default,
        NameSpec::Static(l) => quote!(#l),
        NameSpec::Format(l) => quote!(if ::ferret::__private::active() {
            ::ferret::Name::Owned(::std::format!(#l))
        } else {
            ::ferret::Name::Static("")
        }),
    };
    let body = if sig.asyncness.is_some() {
        let record_err = if args.err {
            quote!(.record_err())
        } else {
            quote!()
        };
        quote!({
            ::ferret::InSpanExt::in_span(async move #block, #name) #record_err .await
        })
    } else if args.err {
        quote!({
            let mut __ferret_guard = ::ferret::span(#name);
            #[allow(clippy::redundant_closure_call)]
            match (move || #block)() {
                #[allow(clippy::unit_arg)]
                ::core::result::Result::Ok(x) => ::core::result::Result::Ok(x),
                ::core::result::Result::Err(e) => {
                    __ferret_guard.set_error(&e);
                    ::core::result::Result::Err(e)
                }
            }
        })
    } else {
        quote!({
            let __ferret_guard = ::ferret::span(#name);
            #block
        })
    };
    syn::parse2(body)
}

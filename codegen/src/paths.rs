//! Crates named through the runtime: progenitor's output names `serde`, `reqwest`, `chrono` and
//! the rest as the user's own dependencies. Rewritten to `::oauth_sdk_runtime::__private::<crate>`,
//! they need none: an SDK crate depends on the runtime alone, and its versions of these crates are
//! the runtime's.
//!
//! Paths are rewritten wherever they are: types, expressions, `use` trees, derive lists, macro
//! bodies (a `vec![..]` default), and the strings of serde's attributes (`skip_serializing_if`,
//! `with`); serde's derives are told where serde is with `#[serde(crate = "...")]`.

use proc_macro2::{Group, Spacing, Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit_mut::VisitMut;

/// Where the generated code finds the runtime.
pub const RUNTIME: &str = "oauth_sdk_runtime";

/// The crates the runtime re-exports for generated code (`futures` is `futures-util`).
const REEXPORTED: &[&str] = &[
    "bytes",
    "chrono",
    "futures",
    "progenitor_client",
    "regress",
    "reqwest",
    "serde",
    "serde_json",
    "uuid",
];

/// Rewrite every path in `file` that starts at a re-exported crate.
pub fn apply(file: &mut syn::File) {
    ThroughRuntime.visit_file_mut(file);
}

struct ThroughRuntime;

fn reexported(ident: &syn::Ident) -> bool {
    REEXPORTED.iter().any(|name| ident == name)
}

/// `serde::de::Error`, not a lone `bytes` (a variable).
fn starts_at_crate(path: &syn::Path) -> bool {
    path.segments.len() > 1 && reexported(&path.segments[0].ident)
}

/// `::oauth_sdk_runtime::__private` as path segments.
fn private_segments() -> [syn::PathSegment; 2] {
    [
        syn::PathSegment::from(syn::Ident::new(RUNTIME, Span::call_site())),
        syn::PathSegment::from(syn::Ident::new("__private", Span::call_site())),
    ]
}

impl VisitMut for ThroughRuntime {
    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        if starts_at_crate(path) {
            let mut segments: Punctuated<syn::PathSegment, syn::Token![::]> = private_segments().into_iter().collect();
            segments.extend(std::mem::take(&mut path.segments));
            path.segments = segments;
            path.leading_colon = Some(Default::default());
        }
        syn::visit_mut::visit_path_mut(self, path);
    }

    // `<D::Error as serde::de::Error>::custom`: the trait's segments, which `position` counts, grow.
    fn visit_expr_path_mut(&mut self, expr: &mut syn::ExprPath) {
        let grows = expr.qself.is_some() && starts_at_crate(&expr.path);
        syn::visit_mut::visit_expr_path_mut(self, expr);
        if let (true, Some(qself)) = (grows, &mut expr.qself) {
            qself.position += 2;
        }
    }

    fn visit_type_path_mut(&mut self, ty: &mut syn::TypePath) {
        let grows = ty.qself.is_some() && starts_at_crate(&ty.path);
        syn::visit_mut::visit_type_path_mut(self, ty);
        if let (true, Some(qself)) = (grows, &mut ty.qself) {
            qself.position += 2;
        }
    }

    fn visit_item_use_mut(&mut self, item: &mut syn::ItemUse) {
        if let syn::UseTree::Path(first) = &item.tree
            && reexported(&first.ident)
        {
            let [runtime, private] = private_segments();
            let tree = std::mem::replace(
                &mut item.tree,
                syn::UseTree::Glob(syn::UseGlob {
                    star_token: Default::default(),
                }),
            );
            item.tree = syn::UseTree::Path(syn::UsePath {
                ident: runtime.ident,
                colon2_token: Default::default(),
                tree: Box::new(syn::UseTree::Path(syn::UsePath {
                    ident: private.ident,
                    colon2_token: Default::default(),
                    tree: Box::new(tree),
                })),
            });
            item.leading_colon = Some(Default::default());
        }
        syn::visit_mut::visit_item_use_mut(self, item);
    }

    // Macro bodies are tokens to syn: `vec![::serde_json::from_str::<::uuid::Uuid>(..)]` in a default.
    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = through_runtime(std::mem::take(&mut mac.tokens), false);
        syn::visit_mut::visit_macro_mut(self, mac);
    }

    // `#[serde(skip_serializing_if = "::serde_json::Map::is_empty")]`: paths in serde's strings.
    fn visit_attribute_mut(&mut self, attr: &mut syn::Attribute) {
        if attr.path().is_ident("serde")
            && let syn::Meta::List(list) = &mut attr.meta
        {
            list.tokens = through_runtime(std::mem::take(&mut list.tokens), true);
        }
        syn::visit_mut::visit_attribute_mut(self, attr);
    }

    fn visit_item_struct_mut(&mut self, item: &mut syn::ItemStruct) {
        self.derives(&mut item.attrs);
        syn::visit_mut::visit_item_struct_mut(self, item);
    }

    fn visit_item_enum_mut(&mut self, item: &mut syn::ItemEnum) {
        self.derives(&mut item.attrs);
        syn::visit_mut::visit_item_enum_mut(self, item);
    }
}

/// The token-level rewrite, for what syn keeps as tokens: a path that starts at a re-exported crate
/// (`serde_json::x`, `::serde_json::x`, not `a::serde_json::x`) gets the runtime's prefix; with
/// `strings`, so does a string literal that holds such a path.
fn through_runtime(tokens: TokenStream, strings: bool) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out: Vec<TokenTree> = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => {
                let mut rewritten = Group::new(group.delimiter(), through_runtime(group.stream(), strings));
                rewritten.set_span(group.span());
                out.push(rewritten.into());
            }
            TokenTree::Ident(ident) if REEXPORTED.iter().any(|c| ident == c) && is_path_sep(&tokens, i + 1) => {
                let n = out.len();
                let after_sep = n >= 2 && is_path_sep(&out, n - 2);
                // `a::serde_json` or `Vec<T>::serde_json`: a later segment, not a crate.
                let mid_path = after_sep
                    && n >= 3
                    && match &out[n - 3] {
                        TokenTree::Ident(_) => true,
                        TokenTree::Punct(p) => p.as_char() == '>',
                        _ => false,
                    };
                if mid_path {
                    out.push(token.clone());
                    continue;
                }
                let prefix: TokenStream = if after_sep {
                    format!("{RUNTIME}::__private::").parse().expect("a path")
                } else {
                    format!("::{RUNTIME}::__private::").parse().expect("a path")
                };
                out.extend(prefix);
                out.push(token.clone());
            }
            TokenTree::Literal(literal) if strings => {
                out.push(path_in_string(literal).unwrap_or_else(|| token.clone()))
            }
            other => out.push(other.clone()),
        }
    }
    out.into_iter().collect()
}

/// `::` at `tokens[i]`.
fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!((tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
}

/// A string literal holding a path that starts at a re-exported crate, rewritten.
fn path_in_string(literal: &proc_macro2::Literal) -> Option<TokenTree> {
    let text = syn::parse_str::<syn::LitStr>(&literal.to_string()).ok()?.value();
    let mut path = syn::parse_str::<syn::Path>(&text).ok()?;
    if !starts_at_crate(&path) {
        return None;
    }
    ThroughRuntime.visit_path_mut(&mut path);
    let text: String = quote::ToTokens::to_token_stream(&path)
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut rewritten = proc_macro2::Literal::string(&text);
    rewritten.set_span(literal.span());
    Some(rewritten.into())
}

impl ThroughRuntime {
    /// Rewrite the paths in `#[derive(..)]` lists (syn keeps them as tokens), and tell serde's
    /// derives where serde is.
    fn derives(&mut self, attrs: &mut Vec<syn::Attribute>) {
        let mut serde_derive = false;
        for attr in attrs.iter_mut().filter(|a| a.path().is_ident("derive")) {
            let Ok(mut derives) = attr.parse_args_with(Punctuated::<syn::Path, syn::Token![,]>::parse_terminated)
            else {
                continue;
            };
            serde_derive |= derives.iter().any(|d| {
                d.segments.first().is_some_and(|s| s.ident == "serde")
                    && d.segments
                        .last()
                        .is_some_and(|s| s.ident == "Serialize" || s.ident == "Deserialize")
            });
            derives.iter_mut().for_each(|d| self.visit_path_mut(d));
            *attr = syn::parse_quote!(#[derive(#derives)]);
        }
        if serde_derive {
            let serde = format!("::{RUNTIME}::__private::serde");
            attrs.push(syn::parse_quote!(#[serde(crate = #serde)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::ToTokens;

    fn rewritten(code: &str) -> String {
        let mut file: syn::File = syn::parse_str(code).unwrap();
        super::apply(&mut file);
        file.to_token_stream().to_string().replace(' ', "")
    }

    #[test]
    fn crates_are_named_through_the_runtime() {
        let code = rewritten(
            "use progenitor_client::{encode_path, ResponseValue};
             pub use progenitor_client::ByteStream;
             fn f(v: ::serde_json::Value, t: chrono::DateTime<chrono::Utc>) -> reqwest::Result<()> {
                 let _ = ::std::string::String::new();
                 ::regress::Regex::new(\"x\");
                 <D::Error as serde::de::Error>::custom(e);
             }",
        );
        assert!(code.contains("use::oauth_sdk_runtime::__private::progenitor_client::{encode_path,ResponseValue}"));
        assert!(code.contains("pubuse::oauth_sdk_runtime::__private::progenitor_client::ByteStream"));
        assert!(code.contains("v:::oauth_sdk_runtime::__private::serde_json::Value"));
        assert!(
            code.contains(
                "::oauth_sdk_runtime::__private::chrono::DateTime<::oauth_sdk_runtime::__private::chrono::Utc>"
            )
        );
        assert!(code.contains("->::oauth_sdk_runtime::__private::reqwest::Result<()>"));
        assert!(code.contains("::oauth_sdk_runtime::__private::regress::Regex::new"));
        assert!(
            code.contains("<D::Erroras::oauth_sdk_runtime::__private::serde::de::Error>::custom(e)"),
            "{code}"
        );
        assert!(
            code.contains("::std::string::String::new()"),
            "std is left alone: {code}"
        );
    }

    #[test]
    fn serde_derives_are_told_where_serde_is() {
        let code = rewritten(
            "#[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
             #[serde(rename_all = \"snake_case\")]
             pub struct Task { pub id: ::uuid::Uuid }
             #[derive(Clone, Debug)]
             pub enum Plain { A }",
        );
        assert!(code.contains(
            "#[derive(::oauth_sdk_runtime::__private::serde::Deserialize,::oauth_sdk_runtime::__private::serde::Serialize,Clone,Debug)]"
        ), "{code}");
        assert!(
            code.contains("#[serde(crate=\"::oauth_sdk_runtime::__private::serde\")]"),
            "{code}"
        );
        assert!(
            code.contains("pubid:::oauth_sdk_runtime::__private::uuid::Uuid"),
            "{code}"
        );
        assert_eq!(
            code.matches("serde(crate").count(),
            1,
            "only serde's derives get the attribute: {code}"
        );
    }

    #[test]
    fn paths_in_macro_bodies_and_serde_strings_are_rewritten() {
        let code = rewritten(
            "pub struct T {
                 #[serde(default, skip_serializing_if = \"::serde_json::Map::is_empty\")]
                 pub meta: ::serde_json::Map<String, ::serde_json::Value>,
                 #[serde(deserialize_with = \"::std::option::Option::deserialize\")]
                 pub x: Option<u8>,
             }
             fn d() -> Vec<::uuid::Uuid> { vec![::serde_json::from_str::<::uuid::Uuid>(\"1\").unwrap(), a::uuid::X] }",
        );
        assert!(
            code.contains(r#"skip_serializing_if="::oauth_sdk_runtime::__private::serde_json::Map::is_empty""#),
            "{code}"
        );
        assert!(
            code.contains(r#"deserialize_with="::std::option::Option::deserialize""#),
            "{code}"
        );
        assert!(
            code.contains("vec![::oauth_sdk_runtime::__private::serde_json::from_str::<::oauth_sdk_runtime::__private::uuid::Uuid>"),
            "{code}"
        );
        assert!(code.contains(",a::uuid::X]"), "a later segment is not a crate: {code}");
    }

    #[test]
    fn a_single_segment_name_is_not_a_crate() {
        // A local variable or field called `bytes` stays what it is.
        let code = rewritten("fn f(bytes: Vec<u8>) -> usize { bytes.len() }");
        assert!(code.contains("bytes.len()"), "{code}");
    }
}

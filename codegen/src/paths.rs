//! Crates named through the runtime: progenitor's output names `serde`, `reqwest`, `chrono` and
//! the rest as the user's own dependencies. Rewritten to `::oauth_sdk_runtime::__private::<crate>`,
//! they need none: an SDK crate depends on the runtime alone, and its versions of these crates are
//! the runtime's.
//!
//! Paths are rewritten wherever syn sees them (types, expressions, `use` trees, derive lists); serde's
//! derives are told where serde is with `#[serde(crate = "...")]`. What progenitor writes inside other
//! macros' tokens (`format!` arguments) names only `std`.

use proc_macro2::Span;
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

    fn visit_item_struct_mut(&mut self, item: &mut syn::ItemStruct) {
        self.derives(&mut item.attrs);
        syn::visit_mut::visit_item_struct_mut(self, item);
    }

    fn visit_item_enum_mut(&mut self, item: &mut syn::ItemEnum) {
        self.derives(&mut item.attrs);
        syn::visit_mut::visit_item_enum_mut(self, item);
    }
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
    fn a_single_segment_name_is_not_a_crate() {
        // A local variable or field called `bytes` stays what it is.
        let code = rewritten("fn f(bytes: Vec<u8>) -> usize { bytes.len() }");
        assert!(code.contains("bytes.len()"), "{code}");
    }
}

//! What the SDK changes in progenitor's generated methods: per-request work taken out, so a generated
//! call costs next to nothing over a hand-written reqwest call. (The executor's reports need no
//! rewrite: progenitor's `post` hook hands them back before the status is read.)
//!
//! Each rewrite is an optimisation, local and checked: if progenitor's output stops looking as
//! expected, the code is left as progenitor wrote it (still correct, just slower), and the unit tests
//! below fail. `BENCHMARKS.md` has what they save.
//!
//! - **No `api-version` header.** progenitor sends `api-version: <info.version>` with every request:
//!   the convention of Oxide's versioned (dropshot) APIs. Other APIs do not define the header, so it is
//!   bytes on the wire and work on both ends for nothing, and an API that reads `api-version` itself
//!   could misread it. An API that does want it gets it as a default header on the `reqwest::Client`
//!   given to `ClientBuilder::http_client`.
//! - **URLs joined, not formatted.** `format!("{}/v1/projects/{}", self.baseurl, encode_path(..))`
//!   becomes one `concat` of the pieces: one allocation, no formatting machinery.
//! - **Response headers moved, not copied.** progenitor's `ResponseValue::from_response`, `empty` and
//!   `stream` clone the response's header map; the runtime's versions (`__private::response`) take it.
//!
//! And two that are not optimisations but fixes:
//!
//! - **`OPTIONS` and `TRACE` sent.** progenitor calls `client.options(url)` and `client.trace(url)`,
//!   which `reqwest::Client` does not have; they become `client.request(Method::OPTIONS, url)`.
//! - **Exact statuses before ranges.** progenitor writes a status `match` in the spec's order, so a
//!   spec listing `4XX` before `429` gets a `400..=499` arm that swallows 429 (and an unreachable
//!   pattern lint). The arms are sorted: exact statuses, then ranges, then the fallback.

use syn::visit_mut::VisitMut;

/// Apply every rewrite to progenitor's generated file.
pub fn apply(file: &mut syn::File) {
    Rewrite.visit_file_mut(file);
}

struct Rewrite;

impl VisitMut for Rewrite {
    fn visit_block_mut(&mut self, block: &mut syn::Block) {
        let before = block.stmts.len();
        block.stmts.retain(|stmt| !appends_api_version(stmt));
        let removed = before - block.stmts.len();
        if removed > 0
            && block
                .stmts
                .iter_mut()
                .any(|stmt| shrink_header_map(stmt, removed) == Some(0))
        {
            // No header of the operation's own is left: no map to build and merge.
            block.stmts.retain(|stmt| !declares_header_map(stmt));
            block
                .stmts
                .iter_mut()
                .for_each(|stmt| DropHeaderMerge.visit_stmt_mut(stmt));
        }
        syn::visit_mut::visit_block_mut(self, block);
    }

    fn visit_expr_method_call_mut(&mut self, call: &mut syn::ExprMethodCall) {
        let receiver = &*call.receiver;
        if matches!(call.method.to_string().as_str(), "options" | "trace")
            && quote::quote!(#receiver).to_string() == "self . client"
            && call.args.len() == 1
        {
            let method = syn::Ident::new(&call.method.to_string().to_uppercase(), call.method.span());
            let url = call.args[0].clone();
            call.method = syn::Ident::new("request", call.method.span());
            call.args = syn::parse_quote!(::reqwest::Method::#method, #url);
        }
        syn::visit_mut::visit_expr_method_call_mut(self, call);
    }

    fn visit_expr_match_mut(&mut self, expr: &mut syn::ExprMatch) {
        let scrutinee = &*expr.expr;
        // `response.status().as_u16()` (`_response` where an operation has a parameter `response`).
        if quote::quote!(#scrutinee)
            .to_string()
            .ends_with(". status () . as_u16 ()")
        {
            let rank = |arm: &syn::Arm| match &arm.pat {
                syn::Pat::Lit(_) => 0,
                syn::Pat::Range(_) => 1,
                _ => 2,
            };
            expr.arms.sort_by_key(rank);
        }
        syn::visit_mut::visit_expr_match_mut(self, expr);
    }

    fn visit_local_mut(&mut self, local: &mut syn::Local) {
        if let Some(init) = &mut local.init
            && let syn::Expr::Macro(mac) = &*init.expr
            && let Some(joined) = join_url(&mac.mac)
        {
            *init.expr = joined;
        }
        syn::visit_mut::visit_local_mut(self, local);
    }

    fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
        if let syn::Expr::Path(function) = &mut *call.func {
            let segments: Vec<String> = function.path.segments.iter().map(|s| s.ident.to_string()).collect();
            if let [ty, constructor] = &segments[..]
                && ty == "ResponseValue"
                && matches!(constructor.as_str(), "from_response" | "empty" | "stream")
            {
                let constructor = syn::Ident::new(constructor, proc_macro2::Span::call_site());
                function.path = syn::parse_quote!(::oauth_sdk_runtime::__private::response::#constructor);
            }
        }
        syn::visit_mut::visit_expr_call_mut(self, call);
    }
}

/// `header_map.append(HeaderName::from_static("api-version"), HeaderValue::from_static(Self::api_version()));`
fn appends_api_version(stmt: &syn::Stmt) -> bool {
    let syn::Stmt::Expr(syn::Expr::MethodCall(call), Some(_)) = stmt else {
        return false;
    };
    call.method == "append"
        && matches!(&*call.receiver, syn::Expr::Path(p) if p.path.is_ident("header_map"))
        && call.args.first().is_some_and(|name| {
            matches!(name, syn::Expr::Call(c) if c.args.iter().any(|a| matches!(a,
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) if s.value() == "api-version")))
        })
}

/// `let mut header_map = HeaderMap::with_capacity(Nusize);` sized for `removed` fewer headers; returns
/// the new capacity.
fn shrink_header_map(stmt: &mut syn::Stmt, removed: usize) -> Option<usize> {
    let syn::Expr::Call(call) = &mut *header_map_init(stmt)? else {
        return None;
    };
    let Some(syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(capacity),
        ..
    })) = call.args.first_mut()
    else {
        return None;
    };
    let n = capacity.base10_parse::<usize>().ok()?.saturating_sub(removed);
    *capacity = syn::LitInt::new(&format!("{n}usize"), proc_macro2::Span::call_site());
    Some(n)
}

fn declares_header_map(stmt: &syn::Stmt) -> bool {
    matches!(stmt, syn::Stmt::Local(local) if matches!(&local.pat, syn::Pat::Ident(b) if b.ident == "header_map"))
}

fn header_map_init(stmt: &mut syn::Stmt) -> Option<&mut syn::Expr> {
    if !declares_header_map(stmt) {
        return None;
    }
    let syn::Stmt::Local(local) = stmt else {
        return None;
    };
    local.init.as_mut().map(|init| &mut *init.expr)
}

/// `format!("{}/v1/projects/{}", self.baseurl, encode_path(&id.to_string()))` as
/// `[baseurl, "/v1/projects/", encoded].concat()`, if that is what it is: `{}` placeholders only, and
/// arguments that are the base URL or `encode_path` calls (both strings).
fn join_url(mac: &syn::Macro) -> Option<syn::Expr> {
    use syn::punctuated::Punctuated;
    if !mac.path.is_ident("format") {
        return None;
    }
    let parser = Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
    let args = syn::parse::Parser::parse2(parser, mac.tokens.clone()).ok()?;
    let mut args = args.into_iter();
    let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Str(template),
        ..
    }) = args.next()?
    else {
        return None;
    };
    let template = template.value();
    let literals: Vec<&str> = template.split("{}").collect();
    let args: Vec<syn::Expr> = args.collect();
    let is_string = |arg: &syn::Expr| match arg {
        syn::Expr::Field(field) => quote::quote!(#field).to_string() == "self . baseurl",
        syn::Expr::Call(call) => matches!(&*call.func, syn::Expr::Path(p) if p.path.is_ident("encode_path")),
        _ => false,
    };
    if literals.len() != args.len() + 1
        || literals.iter().any(|l| l.contains(['{', '}']))
        || !args.iter().all(is_string)
    {
        return None;
    }
    let mut pieces: Vec<syn::Expr> = Vec::new();
    for (i, literal) in literals.iter().enumerate() {
        if !literal.is_empty() {
            pieces.push(syn::parse_quote!(#literal));
        }
        if let Some(arg) = args.get(i) {
            pieces.push(syn::parse_quote!(::std::convert::AsRef::<str>::as_ref(&#arg)));
        }
    }
    Some(syn::parse_quote!([#(#pieces),*].concat()))
}

/// `builder.headers(header_map)` becomes `builder`.
struct DropHeaderMerge;

impl VisitMut for DropHeaderMerge {
    fn visit_expr_mut(&mut self, expr: &mut syn::Expr) {
        if let syn::Expr::MethodCall(call) = expr
            && call.method == "headers"
            && call.args.len() == 1
            && matches!(&call.args[0], syn::Expr::Path(p) if p.path.is_ident("header_map"))
        {
            *expr = (*call.receiver).clone();
        }
        syn::visit_mut::visit_expr_mut(self, expr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn trimmed(tokens: proc_macro2::TokenStream) -> String {
        let mut file: syn::File = syn::parse2(tokens).expect("parses");
        apply(&mut file);
        prettyplease::unparse(&file)
    }

    #[test]
    fn drops_the_api_version_header_and_keeps_the_operations_own() {
        let code = trimmed(quote! {
            impl Client {
                pub async fn get_thing<'a>(&'a self, x_trace: &'a str) -> Result<ResponseValue<types::Thing>, Error<()>> {
                    let url = format!("{}/thing", self.baseurl,);
                    let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
                    header_map.append(
                        ::reqwest::header::HeaderName::from_static("api-version"),
                        ::reqwest::header::HeaderValue::from_static(Self::api_version()),
                    );
                    header_map.append("x-trace", x_trace.to_string().try_into()?);
                    let request = self.client.get(url).headers(header_map).build()?;
                    let response = self.exec(request, &info).await?;
                    match response.status().as_u16() {
                        200u16 => ResponseValue::from_response(response).await,
                        204u16 => Ok(ResponseValue::empty(response)),
                        _ => Err(Error::UnexpectedResponse(response)),
                    }
                }
            }
        });
        assert!(!code.contains("api-version"), "{code}");
        assert!(!code.contains("api_version"), "{code}");
        assert!(code.contains("with_capacity(1usize)"), "{code}");
        assert!(code.contains(r#"header_map.append("x-trace""#), "{code}");
        let joined: String = code.split_whitespace().collect();
        assert!(
            joined.contains(r#"leturl=[::std::convert::AsRef::<str>::as_ref(&self.baseurl),"/thing"].concat();"#),
            "{code}"
        );
        assert!(
            code.contains("::oauth_sdk_runtime::__private::response::from_response(response)"),
            "{code}"
        );
        assert!(
            code.contains("::oauth_sdk_runtime::__private::response::empty(response)"),
            "{code}"
        );
        assert!(!code.contains("ResponseValue::"), "{code}");
    }

    #[test]
    fn builds_no_header_map_when_no_header_is_left() {
        let code = trimmed(quote! {
            impl Client {
                pub async fn get_me<'a>(&'a self) -> Result<ResponseValue<types::User>, Error<()>> {
                    let url = format!("{}/v1/me", self.baseurl,);
                    let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
                    header_map.append(
                        ::reqwest::header::HeaderName::from_static("api-version"),
                        ::reqwest::header::HeaderValue::from_static(Self::api_version()),
                    );
                    #[allow(unused_mut)]
                    let mut request = self.client.get(url).header(::reqwest::header::ACCEPT, accept).headers(header_map).build()?;
                    self.exec(request, &info).await
                }
            }
        });
        assert!(!code.contains("header_map"), "{code}");
        let chain: String = code.split_whitespace().collect();
        assert!(
            chain.contains(".header(::reqwest::header::ACCEPT,accept).build()?"),
            "{code}"
        );
    }

    #[test]
    fn joins_path_parameters_into_the_url() {
        let code = trimmed(quote! {
            impl Client {
                pub async fn get_task<'a>(&'a self, project_id: &'a uuid::Uuid, task_id: i64) {
                    let url_ = format!(
                        "{}/v1/projects/{}/tasks/{}", self.baseurl, encode_path(&project_id.to_string()),
                        encode_path(&task_id.to_string()),
                    );
                    let braces = format!("{}/a{{b}}", self.baseurl);
                    let other = format!("{}/{}", self.baseurl, project_id);
                }
            }
        });
        let joined: String = code.split_whitespace().collect();
        assert!(
            joined.contains(
                r#"leturl_=[::std::convert::AsRef::<str>::as_ref(&self.baseurl),"/v1/projects/",::std::convert::AsRef::<str>::as_ref(&encode_path(&project_id.to_string())),"/tasks/",::std::convert::AsRef::<str>::as_ref(&encode_path(&task_id.to_string())),].concat();"#
            ) || joined.contains(
                r#"leturl_=[::std::convert::AsRef::<str>::as_ref(&self.baseurl),"/v1/projects/",::std::convert::AsRef::<str>::as_ref(&encode_path(&project_id.to_string())),"/tasks/",::std::convert::AsRef::<str>::as_ref(&encode_path(&task_id.to_string()))].concat();"#
            ),
            "{code}"
        );
        // Escaped braces, and arguments that may not be strings, keep progenitor's `format!`.
        assert!(
            joined.contains(r#"letbraces=format!("{}/a{{b}}",self.baseurl);"#),
            "{code}"
        );
        assert!(
            joined.contains(r#"letother=format!("{}/{}",self.baseurl,project_id);"#),
            "{code}"
        );
    }

    #[test]
    fn leaves_other_code_alone() {
        let source = quote! {
            impl Client {
                pub async fn upgrade<'a>(&'a self) -> Result<ResponseValue<reqwest::Upgraded>, Error<()>> {
                    let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
                    header_map.append("api-key", self.key.clone());
                    ResponseValue::upgrade(response).await
                }
            }
        };
        let before = prettyplease::unparse(&syn::parse2(source.clone()).expect("parses"));
        assert_eq!(trimmed(source), before);
    }

    #[test]
    fn exact_statuses_come_before_ranges_and_the_fallback_last() {
        let code = trimmed(quote! {
            impl Client {
                pub async fn a(&self) -> Result<(), ()> {
                    match response.status().as_u16() {
                        200u16 => a(),
                        _ => z(),
                        400u16..=499u16 => range(),
                        429u16 => exact(),
                    }
                }
            }
        });
        let order: Vec<usize> = ["200u16", "429u16", "400u16..=499u16", "_ =>"]
            .iter()
            .map(|arm| code.find(arm).unwrap_or_else(|| panic!("{arm} in {code}")))
            .collect();
        assert!(order.is_sorted(), "{code}");
    }

    #[test]
    fn options_and_trace_go_through_request() {
        let code = trimmed(quote! {
            impl Client {
                pub async fn a(&self) {
                    let request = self.client.options(url).build();
                    let other = self.client.get(url).build();
                }
            }
        });
        assert!(
            code.contains("self.client.request(::reqwest::Method::OPTIONS, url)"),
            "{code}"
        );
        assert!(code.contains("self.client.get(url)"), "{code}");
    }
}

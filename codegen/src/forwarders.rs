//! The typestate's reach: every generated operation on `Authenticated<S>`, the public ones also on
//! the logged-out `Client`.
//!
//! progenitor's methods live on its private `Client`; the SDK exposes them through forwarders with the
//! same signature (read back from progenitor's output with `syn`, so any spec's types fit), whose error
//! type is the SDK's `Error<E>`. The forwarder runs the call inside `executor::run`, which is how a typed
//! authentication failure reaches the caller even though progenitor's `exec` hook can only return
//! `reqwest` errors.

use proc_macro2::TokenStream;
use quote::quote;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;

use crate::CodegenError;
use crate::security::{Access, AuthModel, OperationAuth};

/// One generated operation method and its security.
#[derive(Clone)]
pub struct Method {
    pub sig: syn::Signature,
    pub docs: Vec<syn::Attribute>,
    pub auth: OperationAuth,
    /// progenitor's `<operation>_stream` pagination helper, where it wrote one.
    pub stream: Option<syn::ImplItemFn>,
}

/// Pair progenitor's methods with the operations' security.
///
/// progenitor emits one method per operation, in the order `security::analyse` walks them, and names
/// each method after the operation id it writes into `OperationInfo`; both are checked here.
pub fn collect(name: &str, file: &syn::File, auth: &AuthModel) -> Result<Vec<Method>, CodegenError> {
    let internal =
        |what: String| CodegenError::new(name, format!("internal error reading progenitor's output: {what}"));

    let mut operations = Vec::new();
    let mut helpers = Vec::new();
    for item in &file.items {
        let syn::Item::Impl(block) = item else {
            continue;
        };
        let is_client = matches!(&*block.self_ty, syn::Type::Path(p) if p.path.is_ident("Client"));
        if !is_client || block.trait_.is_some() {
            continue;
        }
        for member in &block.items {
            let syn::ImplItem::Fn(function) = member else {
                continue;
            };
            let mut finder = OperationIdFinder::default();
            finder.visit_block(&function.block);
            // Methods without an `OperationInfo` are progenitor's helpers (constructors, `*_stream`
            // pagination wrappers around an operation method).
            if let Some(operation_id) = finder.0 {
                if function.sig.ident != operation_id {
                    return Err(internal(format!(
                        "method `{}` sends operation `{operation_id}`",
                        function.sig.ident
                    )));
                }
                let docs = function
                    .attrs
                    .iter()
                    .filter(|a| a.path().is_ident("doc"))
                    .cloned()
                    .collect();
                operations.push((function.sig.clone(), docs));
            } else {
                helpers.push(function);
            }
        }
    }
    if operations.len() != auth.operations.len() {
        return Err(internal(format!(
            "{} operation methods for {} operations in the spec",
            operations.len(),
            auth.operations.len()
        )));
    }
    operations
        .into_iter()
        .zip(&auth.operations)
        .map(|((sig, docs), auth)| {
            if sig.asyncness.is_none() {
                return Err(internal(format!("operation method `{}` is not async", sig.ident)));
            }
            let stream_name = format!("{}_stream", sig.ident);
            let stream = helpers
                .iter()
                .find(|h| h.sig.ident == stream_name)
                .map(|h| (*h).clone());
            Ok(Method {
                sig: with_sdk_error(sig),
                docs,
                auth: auth.clone(),
                stream,
            })
        })
        .collect()
}

#[derive(Default)]
struct OperationIdFinder(Option<String>);

impl<'ast> Visit<'ast> for OperationIdFinder {
    fn visit_expr_struct(&mut self, expr: &'ast syn::ExprStruct) {
        if expr.path.is_ident("OperationInfo") {
            for field in &expr.fields {
                let is_id = matches!(&field.member, syn::Member::Named(m) if m == "operation_id");
                if let (
                    true,
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s), ..
                    }),
                ) = (is_id, &field.expr)
                {
                    self.0 = Some(s.value());
                }
            }
        }
        syn::visit::visit_expr_struct(self, expr);
    }
}

/// `Result<ResponseValue<T>, Error<E>>` (progenitor's error) becomes the runtime's `Error<E>`.
fn with_sdk_error(mut sig: syn::Signature) -> syn::Signature {
    struct SdkError;
    impl VisitMut for SdkError {
        fn visit_type_path_mut(&mut self, ty: &mut syn::TypePath) {
            if ty.qself.is_none() && ty.path.segments.len() == 1 && ty.path.segments[0].ident == "Error" {
                let args = ty.path.segments[0].arguments.clone();
                *ty = syn::parse_quote!(::oauth_sdk_runtime::Error #args);
            }
            syn::visit_mut::visit_type_path_mut(self, ty);
        }
    }
    SdkError.visit_return_type_mut(&mut sig.output);
    sig
}

/// The forwarders and the operation-to-access table the executor consults.
pub fn emit(methods: &[Method]) -> TokenStream {
    let authenticated = methods.iter().map(forwarder);
    let public = methods
        .iter()
        .filter(|m| m.auth.access != Access::Required)
        .map(forwarder);
    let authenticated_streams = methods.iter().filter_map(stream_forwarder);
    let public_streams = methods
        .iter()
        .filter(|m| m.auth.access != Access::Required)
        .filter_map(stream_forwarder);
    let scope_consts = methods.iter().map(|m| {
        let name = quote::format_ident!("{}", m.sig.ident.to_string().to_uppercase());
        let doc = format!("`{}` ({}).", m.auth.label, m.sig.ident);
        let scopes = &m.auth.scopes;
        quote! {
            #[doc = #doc]
            pub const #name: &[&str] = &[#(#scopes),*];
        }
    });
    let access_arms = methods.iter().map(|m| {
        let id = m.sig.ident.to_string();
        let access = match m.auth.access {
            Access::Public => quote!(Public),
            Access::Optional => quote!(Optional),
            Access::Required => quote!(Required),
        };
        quote!(#id => ::oauth_sdk_runtime::__private::Access::#access,)
    });
    quote! {
        /// Every operation of the API. Protected ones carry the session's access token; a token near
        /// expiry is refreshed first, and a request the API rejects for its token is retried once.
        impl<S: ::oauth_sdk_runtime::TokenStore> Authenticated<S> {
            #(#authenticated)*
            #(#authenticated_streams)*
        }

        /// The operations the spec makes public (`security: []` or an optional requirement).
        impl Client {
            #(#public)*
            #(#public_streams)*
        }

        /// The OAuth scopes each operation requires, from the spec's `security`.
        pub mod scopes {
            #(#scope_consts)*
        }

        /// How each operation is authorised, from the spec's `security`.
        fn operation_access(operation_id: &str) -> ::oauth_sdk_runtime::__private::Access {
            match operation_id {
                #(#access_arms)*
                _ => ::oauth_sdk_runtime::__private::Access::Required,
            }
        }
    }
}

/// The names the generated `Client` and `Authenticated<S>` use for themselves, or reach through
/// `Deref` (the session's methods): an operation with one of them gets `_operation` after its name.
const RESERVED: &[&str] = &[
    "builder",
    "with_timeout",
    "resume",
    "start_session",
    "login_password",
    "login_client_credentials",
    "authorization_request",
    "login_authorization_code",
    "login_authorization_code_loopback",
    "device_authorization",
    "login_device",
    "logout",
    "refresh",
    "flush",
    "metrics",
    "session_changes",
    "store",
    // Trait methods an inherent method would hide in method-call syntax (`api.clone()`).
    "clone",
    "clone_from",
    "deref",
    "fmt",
    "to_owned",
    "into",
    "eq",
];

/// The name an operation's forwarder has: the method's, unless the SDK uses that name itself.
pub fn public_name(method: &syn::Ident) -> syn::Ident {
    if RESERVED.iter().any(|r| method == r) {
        quote::format_ident!("{method}_operation")
    } else {
        method.clone()
    }
}

/// One warning for each operation renamed by [`public_name`].
pub fn renamed(methods: &[Method]) -> Vec<String> {
    methods
        .iter()
        .filter(|m| public_name(&m.sig.ident) != m.sig.ident)
        .map(|m| {
            format!(
                "operation `{}` is `{}` in the SDK: `{}` is the SDK's own method",
                m.auth.label,
                public_name(&m.sig.ident),
                m.sig.ident
            )
        })
        .collect()
}

/// progenitor's pagination helper, as a method of the SDK's type: the same body, whose calls of the
/// operation (`self.list_things(..)`) now reach the SDK's forwarder, so every page is fetched with
/// the session's token (renewed as needed) and fails with the SDK's `Error<E>`.
fn stream_forwarder(method: &Method) -> Option<TokenStream> {
    struct CallsForwarder<'a>(&'a syn::Ident, syn::Ident);
    impl VisitMut for CallsForwarder<'_> {
        fn visit_expr_method_call_mut(&mut self, call: &mut syn::ExprMethodCall) {
            if call.method == *self.0 && matches!(&*call.receiver, syn::Expr::Path(p) if p.path.is_ident("self")) {
                call.method = self.1.clone();
            }
            syn::visit_mut::visit_expr_method_call_mut(self, call);
        }
    }
    let mut stream = method.stream.clone()?;
    let operation = &method.sig.ident;
    let public = public_name(operation);
    CallsForwarder(operation, public.clone()).visit_block_mut(&mut stream.block);
    stream.sig = with_sdk_error(stream.sig);
    stream.sig.ident = quote::format_ident!("{public}_stream");
    stream.vis = syn::parse_quote!(pub);
    Some(quote!(#stream))
}

fn forwarder(method: &Method) -> TokenStream {
    let Method { sig, docs, auth, .. } = method;
    let name = &sig.ident;
    let mut sig = sig.clone();
    sig.ident = public_name(name);
    let generics: Vec<&syn::Ident> = sig.generics.type_params().map(|p| &p.ident).collect();

    // The call may be sent twice (once more after a renewal), so the forwarder builds it from a
    // closure: references and clones go in as they are; a body given by value (progenitor's
    // `B: Into<reqwest::Body>`) becomes an `Upload`, which can be sent again unless it is a stream.
    let mut uploads = Vec::new();
    let args: Vec<TokenStream> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            syn::FnArg::Typed(typed) => Some(typed),
            syn::FnArg::Receiver(_) => None,
        })
        .map(|typed| {
            let pat = &typed.pat;
            match &*typed.ty {
                syn::Type::Reference(_) => quote!(#pat),
                syn::Type::Path(p) if generics.iter().any(|g| p.path.is_ident(*g)) => {
                    uploads.push(pat.clone());
                    quote!(#pat.body())
                }
                _ => quote!(::std::clone::Clone::clone(&#pat)),
            }
        })
        .collect();
    let resendable = if uploads.is_empty() {
        quote!(true)
    } else {
        quote!(#(#uploads.is_resendable())&&*)
    };

    let access_doc = match auth.access {
        Access::Public => "Public: needs no login and never sends a token.".to_owned(),
        Access::Optional => "Login optional: sends the access token when there is a session.".to_owned(),
        Access::Required if auth.scopes.is_empty() => "Needs a login.".to_owned(),
        Access::Required => format!(
            "Needs a login with scope{} {}.",
            if auth.scopes.len() == 1 { "" } else { "s" },
            auth.scopes
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let label = format!("`{}`. {access_doc}", auth.label);
    quote! {
        #(#docs)*
        #[doc = ""]
        #[doc = #label]
        pub #sig {
            #(let #uploads = ::oauth_sdk_runtime::__private::Upload::new(#uploads);)*
            ::oauth_sdk_runtime::__private::run(#resendable, |attempt| {
                ::oauth_sdk_runtime::__private::ApiFor::api_for(&self.inner, attempt).#name(#(#args),*)
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    fn generate(fixture: &str) -> String {
        let path = format!("{}/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        crate::generate(std::path::Path::new(&path))
            .unwrap_or_else(|e| panic!("{e}"))
            .code
    }

    #[test]
    fn public_operations_are_forwarded_on_both_states_protected_only_on_authenticated() {
        let code = generate("mixed.json");
        let block = |from: &str, to: &str| code.split(from).nth(1).unwrap().split(to).next().unwrap().to_owned();
        let client = block("/// The operations the spec makes public", "fn operation_access");
        let authenticated = block(
            "/// Every operation of the API.",
            "/// The operations the spec makes public",
        );
        for op in ["get_status", "get_feed", "get_account", "update_account"] {
            assert!(
                authenticated.contains(&format!("pub async fn {op}")),
                "{op} missing on Authenticated"
            );
        }
        assert!(client.contains("pub async fn get_status"));
        assert!(client.contains("pub async fn get_feed"));
        assert!(!client.contains("pub async fn get_account"));
        assert!(!client.contains("pub async fn update_account"));
        assert!(code.contains(r#""get_feed" => ::oauth_sdk_runtime::__private::Access::Optional"#));
        assert!(code.contains(r#""get_status" => ::oauth_sdk_runtime::__private::Access::Public"#));
        assert!(code.contains(r#""update_account" => ::oauth_sdk_runtime::__private::Access::Required"#));
    }

    #[test]
    fn forwarders_return_the_sdk_error_and_document_scopes() {
        let code = generate("mixed.json");
        assert!(code.contains("::oauth_sdk_runtime::Error<types::Problem>"), "{code}");
        assert!(code.contains("Needs a login with scopes `account.read`, `account.write`."));
    }

    #[test]
    fn each_operation_s_scopes_are_a_constant() {
        let code = generate("mixed.json");
        assert!(
            code.contains(r#"pub const UPDATE_ACCOUNT: &[&str] = &["account.read", "account.write"];"#),
            "{code}"
        );
        assert!(code.contains("pub const GET_STATUS: &[&str] = &[];"));
    }

    #[test]
    fn login_methods_exist_only_for_declared_flows() {
        let cc_only = generate("client-credentials-only.json");
        assert!(cc_only.contains("pub async fn login_client_credentials"));
        assert!(!cc_only.contains("pub async fn login_password"));
        let password_only = generate("password-only.json");
        assert!(password_only.contains("pub async fn login_password"));
        assert!(!password_only.contains("pub async fn login_client_credentials"));
        let none = generate("no-security.json");
        assert!(!none.contains("pub async fn login_"));
    }

    #[test]
    fn each_declared_flow_has_its_logins_and_only_those() {
        let logins = |code: &str| -> Vec<&str> {
            [
                "login_password",
                "login_client_credentials",
                "authorization_request",
                "login_authorization_code",
                "login_authorization_code_loopback",
                "device_authorization",
                "login_device",
            ]
            .into_iter()
            .filter(|login| {
                code.contains(&format!("pub async fn {login}<"))
                    || code.contains(&format!("pub fn {login}("))
                    || code.contains(&format!("pub async fn {login}("))
            })
            .collect()
        };
        let code = generate("authorization-code-only.json");
        assert_eq!(
            logins(&code),
            [
                "authorization_request",
                "login_authorization_code",
                "login_authorization_code_loopback"
            ]
        );
        assert!(
            code.contains(r#"authorization_url: Some("https://id.example.com/authorize")"#),
            "{code}"
        );
        assert!(code.contains("device: None"));
        let code = generate("device-only.json");
        assert_eq!(logins(&code), ["device_authorization", "login_device"]);
        assert!(code.contains(r#"authorization_url: Some("https://id.example.com/device/code")"#));
        let code = generate("several-flows.json");
        assert_eq!(
            logins(&code),
            [
                "login_client_credentials",
                "authorization_request",
                "login_authorization_code",
                "login_authorization_code_loopback"
            ]
        );
        assert!(code.contains(r#"refresh_url: Some("https://id.example.com/refresh")"#));
    }

    #[test]
    fn the_generator_s_options_declare_a_device_flow_a_spec_cannot() {
        let path = format!("{}/fixtures/authorization-code-only.json", env!("CARGO_MANIFEST_DIR"));
        let options = crate::Options::new().device_authorization_url("/device");
        let code = crate::generate_with(std::path::Path::new(&path), &options)
            .unwrap()
            .code;
        assert!(code.contains("pub async fn login_device<"));
        assert!(code.contains(r#"authorization_url: Some("/device")"#));
        // Redeemed at the authorization-code flow's token URL.
        let device = code.split("device: Some(").nth(1).unwrap();
        assert!(
            device.contains(r#"token_url: "https://id.example.com/token""#),
            "{device}"
        );
        // Without a flow whose token URL could redeem device codes, the option is refused.
        let none = format!("{}/fixtures/no-security.json", env!("CARGO_MANIFEST_DIR"));
        let err = crate::generate_with(std::path::Path::new(&none), &options).unwrap_err();
        assert!(err.problem.contains("no OAuth flow with a tokenUrl"), "{err}");
    }

    #[test]
    fn the_spec_flows_become_constants() {
        let code = generate("client-credentials-only.json");
        assert!(code.contains("password: None"));
        assert!(
            code.contains(r#"token_url: "https://auth.example.com/token""#),
            "{code}"
        );
    }

    #[test]
    fn a_spec_without_security_generates_only_public_operations() {
        let code = generate("no-security.json");
        let arms: Vec<_> = code
            .lines()
            .filter(|l| l.contains("=> ::oauth_sdk_runtime::__private::Access::"))
            .collect();
        assert_eq!(arms.len(), 3, "{arms:?}");
        assert!(arms[0].contains(r#""ping" => ::oauth_sdk_runtime::__private::Access::Public"#));
        assert!(arms[1].contains(r#""echo" => ::oauth_sdk_runtime::__private::Access::Public"#));
        assert!(
            arms[2].contains("_ => ::oauth_sdk_runtime::__private::Access::Required"),
            "only the fallback arm"
        );
    }

    #[test]
    fn an_operation_named_like_a_session_method_is_renamed_and_said() {
        let text = r##"{"openapi":"3.0.3","info":{"title":"t","version":"1"},
            "components":{"securitySchemes":{"o":{"type":"oauth2","flows":{"clientCredentials":{"tokenUrl":"/token","scopes":{}}}}}},
            "security":[{"o":[]}],
            "paths":{"/logout":{"post":{"operationId":"logout","responses":{"204":{"description":"ok"}}}},
                     "/refresh":{"post":{"operationId":"refresh","responses":{"204":{"description":"ok"}}}}}}"##;
        let generated = crate::generate_from_str("x.json", text, &crate::Options::new()).unwrap();
        assert!(
            generated.code.contains("pub async fn logout_operation"),
            "{}",
            generated.code
        );
        assert!(generated.code.contains("pub async fn refresh_operation"));
        assert!(
            generated.code.contains(".logout()"),
            "the forwarder calls progenitor's method"
        );
        assert!(
            generated
                .warnings
                .iter()
                .any(|w| w.contains("`POST /logout` is `logout_operation`")),
            "{:?}",
            generated.warnings
        );
    }

    #[test]
    fn an_operation_progenitor_refuses_is_left_out_naming_it_and_the_rest_generated() {
        let text = r##"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{
            "/a":{"get":{"operationId":"a",
              "responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Missing"}}}}}}},
            "/b":{"get":{"operationId":"b","responses":{"200":{"description":"ok"}}}}}}"##;
        let generated = crate::generate_from_str("x.json", text, &crate::Options::new()).unwrap();
        assert_eq!(generated.operations, 1);
        assert!(generated.code.contains("pub async fn b"));
        assert!(!generated.code.contains("pub async fn a<"));
        let [left_out] = &generated.left_out[..] else {
            panic!("{:?}", generated.left_out)
        };
        assert_eq!(left_out.operation, "GET /a");
        assert_eq!(left_out.operation_id.as_deref(), Some("a"));
        assert_eq!(left_out.pointer, "/paths/~1a/get");
        assert!(
            left_out.why.contains("#/components/schemas/Missing is missing"),
            "{left_out}"
        );
        assert!(
            generated
                .warnings
                .iter()
                .any(|w| w.starts_with("x.json: GET /a (operationId `a`) left out: ")
                    && w.ends_with("(at /paths/~1a/get)")),
            "{:?}",
            generated.warnings
        );

        // Strict: the same spec fails the build, naming the operation.
        let err = crate::generate_from_str("x.json", text, &crate::Options::new().strict(true)).unwrap_err();
        assert!(
            err.problem.starts_with(
                "1 operation(s) cannot be generated, and OAUTH_SDK_STRICT is set: GET /a (operationId `a`) left out"
            ),
            "{err}"
        );
        assert!(!err.warnings.is_empty(), "what was said before is kept");
    }

    #[test]
    fn a_document_that_cannot_be_read_fails_naming_the_place_and_keeps_what_was_said() {
        let path = format!("{}/fixtures/unreadable.json", env!("CARGO_MANIFEST_DIR"));
        let err = crate::generate(std::path::Path::new(&path)).unwrap_err();
        assert!(err.file.ends_with("unreadable.json"));
        assert!(
            err.problem.contains("not a valid OpenAPI 3.0 document at `info"),
            "{err}"
        );
        assert!(
            err.warnings.iter().any(|w| w.contains("GET /a has no operationId")),
            "{:?}",
            err.warnings
        );
    }

    #[test]
    fn pagination_helpers_are_on_the_sdk_types_and_page_through_its_forwarders() {
        let code = generate("pagination.json");
        let block = |from: &str, to: &str| code.split(from).nth(1).unwrap().split(to).next().unwrap().to_owned();
        let authenticated = block(
            "/// Every operation of the API.",
            "/// The operations the spec makes public",
        );
        let client = block("/// The operations the spec makes public", "pub mod scopes");
        assert!(authenticated.contains("pub fn list_projects_stream<'a>("));
        assert!(authenticated.contains("pub fn list_public_projects_stream<'a>("));
        assert!(client.contains("pub fn list_public_projects_stream<'a>("));
        assert!(
            !client.contains("pub fn list_projects_stream"),
            "a protected list is not on Client"
        );
        let stream = authenticated.split("pub fn list_projects_stream").nth(1).unwrap();
        assert!(stream.contains("::oauth_sdk_runtime::Error<()>"), "the SDK's error");
        // Each page through `self.list_projects`: on `Authenticated`, the forwarder, not progenitor's.
        assert_eq!(stream.matches("self.list_projects(").count(), 2, "{stream}");
    }
}

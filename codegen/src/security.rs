//! What progenitor ignores: the spec's `security`, read into who may call what and how to log in.

use std::collections::BTreeSet;

use openapiv3::{OpenAPI, ReferenceOr, SecurityRequirement, SecurityScheme};
use proc_macro2::TokenStream;
use quote::quote;

use crate::CodegenError;

/// Whether an operation is sent with the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `security: []`, or no requirement at all: callable before login; never carries a token.
    Public,
    /// A requirement list that includes `{}`: callable before login; carries the token after.
    Optional,
    /// Needs a token: callable only on `Authenticated`.
    Required,
}

/// One operation's effective security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationAuth {
    /// `GET /v1/me`, for messages.
    pub label: String,
    pub access: Access,
    /// The OAuth scopes the operation's requirements name (union, sorted).
    pub scopes: Vec<String>,
}

/// One OAuth flow the spec declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub token_url: String,
    pub refresh_url: Option<String>,
    /// The `authorizationUrl` (authorization code) or `deviceAuthorizationUrl` (device).
    pub authorization_url: Option<String>,
    /// Every scope the flow declares.
    pub scopes: Vec<String>,
}

impl Flow {
    fn new<'a>(token_url: &str, refresh_url: &Option<String>, scopes: impl Iterator<Item = &'a String>) -> Self {
        Self {
            token_url: token_url.to_owned(),
            refresh_url: refresh_url.clone(),
            authorization_url: None,
            scopes: scopes.cloned().collect(),
        }
    }

    fn authorized_at(mut self, url: &str) -> Self {
        self.authorization_url = Some(url.to_owned());
        self
    }
}

/// Where [`spec::parse`](crate::spec::parse) keeps an OpenAPI 3.2 `deviceAuthorization` flow, which
/// the `openapiv3` model has no field for.
pub const DEVICE_FLOW: &str = "x-oauth-sdk-device-authorization";

/// OpenAPI 3.2's device authorization flow object.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceFlow {
    device_authorization_url: String,
    token_url: String,
    #[serde(default)]
    refresh_url: Option<String>,
    #[serde(default)]
    scopes: serde_json::Map<String, serde_json::Value>,
}

/// The spec's security, as the SDK uses it.
#[derive(Debug, Clone, Default)]
pub struct AuthModel {
    /// In the order progenitor generates methods (paths in order, then `PathItem::iter`).
    pub operations: Vec<OperationAuth>,
    pub password: Option<Flow>,
    pub client_credentials: Option<Flow>,
    /// Its token URL also renews sessions started from tokens obtained elsewhere.
    pub authorization_code: Option<Flow>,
    /// RFC 8628's device flow: declared by an OpenAPI 3.2 `deviceAuthorization` flow, or by
    /// [`Options::device_authorization_url`](crate::Options::device_authorization_url).
    pub device: Option<Flow>,
    pub warnings: Vec<String>,
}

impl AuthModel {
    /// Declare a device flow at `url` ([`Options::device_authorization_url`](crate::Options)),
    /// redeemed where the spec's other flows are.
    pub fn declare_device_flow(&mut self, name: &str, url: &str) -> Result<(), CodegenError> {
        if self.device.is_some() {
            self.warnings.push(format!(
                "{name}: the spec declares a `deviceAuthorization` flow; the generator's device authorization \
                 URL is ignored (set `ClientBuilder::device_authorization_url` to override it at run time)"
            ));
            return Ok(());
        }
        let redeemed_by = [&self.authorization_code, &self.password, &self.client_credentials];
        let Some(flow) = redeemed_by.into_iter().flatten().next() else {
            return Err(CodegenError::new(
                name,
                "a device authorization URL is given, but the spec declares no OAuth flow with a tokenUrl to \
                 redeem device codes at",
            ));
        };
        self.device = Some(Flow {
            authorization_url: Some(url.to_owned()),
            ..flow.clone()
        });
        Ok(())
    }
}

/// Read the effective security of every operation and the OAuth flows.
pub fn analyse(name: &str, spec: &OpenAPI) -> Result<AuthModel, CodegenError> {
    let mut model = AuthModel::default();
    let schemes = spec.components.as_ref().map(|c| &c.security_schemes);
    let oauth = schemes
        .into_iter()
        .flatten()
        .filter_map(|(scheme_name, scheme)| match scheme {
            ReferenceOr::Item(SecurityScheme::OAuth2 { flows, .. }) => Some((scheme_name, flows)),
            _ => None,
        });
    let oauth: Vec<_> = oauth.collect();
    if oauth.len() > 1 {
        model.warnings.push(format!(
            "{name}: {} OAuth 2 security schemes are declared; the SDK logs in with the first, `{}`",
            oauth.len(),
            oauth[0].0
        ));
    }
    if let Some((scheme, flows)) = oauth.first() {
        model.password = flows
            .password
            .as_ref()
            .map(|f| Flow::new(&f.token_url, &f.refresh_url, f.scopes.keys()));
        model.client_credentials = flows
            .client_credentials
            .as_ref()
            .map(|f| Flow::new(&f.token_url, &f.refresh_url, f.scopes.keys()));
        model.authorization_code = flows
            .authorization_code
            .as_ref()
            .map(|f| Flow::new(&f.token_url, &f.refresh_url, f.scopes.keys()).authorized_at(&f.authorization_url));
        if let Some(device) = flows.extensions.get(DEVICE_FLOW) {
            let device: DeviceFlow = serde_json::from_value(device.clone()).map_err(|e| {
                CodegenError::new(
                    name,
                    format!("OAuth scheme `{scheme}`: its `deviceAuthorization` flow: {e}"),
                )
            })?;
            model.device = Some(
                Flow::new(&device.token_url, &device.refresh_url, device.scopes.keys())
                    .authorized_at(&device.device_authorization_url),
            );
        }
        if let Some(warning) = unsupported_flows(name, scheme, flows) {
            model.warnings.push(warning);
        }
    }
    let oauth_names: BTreeSet<&str> = oauth.iter().map(|(n, _)| n.as_str()).collect();
    // Operations that only schemes other than OAuth 2 protect, by scheme names.
    let mut other_schemes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let known: BTreeSet<&str> = schemes.into_iter().flatten().map(|(n, _)| n.as_str()).collect();

    for (path, item) in spec.paths.iter() {
        let Some(item) = item.as_item() else { continue };
        for (method, operation) in item.iter() {
            let label = format!("{} {path}", method.to_uppercase());
            let requirements = operation.security.as_ref().or(spec.security.as_ref());
            let access = access_of(requirements);
            let mut scopes = BTreeSet::new();
            for requirement in requirements.into_iter().flatten() {
                for (scheme, wanted) in requirement {
                    if !known.contains(scheme.as_str()) {
                        return Err(CodegenError::new(
                            name,
                            format!(
                                "`{label}` requires security scheme `{scheme}`, which \
                                 `components.securitySchemes` does not declare"
                            ),
                        ));
                    }
                    if oauth_names.contains(scheme.as_str()) {
                        scopes.extend(wanted.iter().cloned());
                    }
                }
            }
            let mut access = access;
            let uses_oauth = requirements
                .into_iter()
                .flatten()
                .any(|r| r.keys().any(|k| oauth_names.contains(k.as_str())));
            if access == Access::Required && !uses_oauth {
                // Not supported: static credentials belong on the caller's reqwest client (see below).
                let names: Vec<&str> = requirements
                    .into_iter()
                    .flatten()
                    .flat_map(|r| r.keys().map(String::as_str))
                    .collect();
                other_schemes.entry(names.join(" or ")).or_default().push(label.clone());
                access = Access::Public;
            }
            model.operations.push(OperationAuth {
                label,
                access,
                scopes: scopes.into_iter().collect(),
            });
        }
    }
    for (schemes, operations) in other_schemes {
        model.warnings.push(format!(
            "{name}: {} operation(s) require only `{schemes}`, which is not OAuth 2: generated as public (no token is \
             sent). Send that credential as a default header of the reqwest::Client you give \
             ClientBuilder::http_client. Operations: {}",
            operations.len(),
            operations.join(", ")
        ));
    }
    Ok(model)
}

/// The implicit flow gets no login (RFC 9700 deprecates it: it hands the token to the browser):
/// said, with the way in that remains when it is the only flow.
fn unsupported_flows(name: &str, scheme: &str, flows: &openapiv3::OAuth2Flows) -> Option<String> {
    flows.implicit.as_ref()?;
    let mut warning = format!(
        "{name}: OAuth scheme `{scheme}` declares the `implicit` flow, for which the SDK generates no login: \
         RFC 9700 deprecates it, since it hands the token to the browser"
    );
    let others = flows.password.is_some()
        || flows.client_credentials.is_some()
        || flows.authorization_code.is_some()
        || flows.extensions.contains_key(DEVICE_FLOW);
    if !others {
        warning.push_str(
            ". Ask the API for the `authorizationCode` flow (with PKCE, its replacement); meanwhile the way in \
             is to obtain tokens with another library and hand them over with `Client::start_session` as a \
             `TokenSet` of `Grant::External`, with `ClientBuilder::token_url` set if they carry a refresh token",
        );
    }
    Some(warning)
}

fn access_of(requirements: Option<&Vec<SecurityRequirement>>) -> Access {
    match requirements {
        None => Access::Public,
        Some(list) if list.is_empty() => Access::Public,
        Some(list) if list.iter().any(|r| r.is_empty()) => Access::Optional,
        Some(_) => Access::Required,
    }
}

/// The flows as constants the SDK's configuration reads for its defaults.
pub fn emit(model: &AuthModel) -> TokenStream {
    fn flow(flow: &Option<Flow>) -> TokenStream {
        match flow {
            None => quote!(None),
            Some(Flow {
                token_url,
                refresh_url,
                authorization_url,
                scopes,
            }) => {
                let optional = |url: &Option<String>| match url {
                    Some(url) => quote!(Some(#url)),
                    None => quote!(None),
                };
                let (refresh_url, authorization_url) = (optional(refresh_url), optional(authorization_url));
                quote!(Some(::oauth_sdk_runtime::__private::SpecFlow {
                    token_url: #token_url,
                    refresh_url: #refresh_url,
                    authorization_url: #authorization_url,
                    scopes: &[#(#scopes),*],
                }))
            }
        }
    }
    let password = flow(&model.password);
    let client_credentials = flow(&model.client_credentials);
    let authorization_code = flow(&model.authorization_code);
    let device = flow(&model.device);
    let login_authorization_code = model.authorization_code.as_ref().map(|_| {
        quote! {
            /// The first step of the authorization-code login (with PKCE): the URL to send the
            /// user's browser to, and the [`PendingLogin`](::oauth_sdk_runtime::PendingLogin) to keep
            /// (in the user's server-side session) until the callback. `redirect_uri` is where the
            /// authorization server sends the browser back; `scopes` empty asks for the configured
            /// scopes (default: every scope the spec's flow declares).
            ///
            /// Generated because the spec declares an authorization-code flow.
            pub fn authorization_request(
                &self,
                redirect_uri: &str,
                scopes: &[&str],
            ) -> ::std::result::Result<::oauth_sdk_runtime::AuthorizationRequest, ::oauth_sdk_runtime::Error> {
                self.inner.authorization_request(redirect_uri, scopes)
            }

            /// The second step: check the callback (its URL, or its query string) against `pending`
            /// (its `state` always, its `iss` when the server sends one), redeem its code with the
            /// PKCE verifier, and write the session to `store`. A callback that fails a check is an
            /// [`Error::Authorization`](::oauth_sdk_runtime::Error::Authorization) and stores nothing.
            pub async fn login_authorization_code<S: ::oauth_sdk_runtime::TokenStore>(
                self,
                store: S,
                pending: &::oauth_sdk_runtime::PendingLogin,
                callback: &str,
            ) -> ::std::result::Result<Authenticated<S>, ::oauth_sdk_runtime::Error> {
                self.inner.login_with_authorization_code(store, pending, callback).await
            }

            /// The authorization-code login of a command-line or desktop application: listens on
            /// `127.0.0.1` (RFC 8252), gives `open` the URL to send the user to (open a browser, or
            /// print it), and waits for the callback for at most
            /// [`DEFAULT_LOOPBACK_TIMEOUT`](::oauth_sdk_runtime::DEFAULT_LOOPBACK_TIMEOUT). Use
            /// [`LoopbackRedirect`](::oauth_sdk_runtime::LoopbackRedirect) and the two steps to choose
            /// the port or the timeout.
            pub async fn login_authorization_code_loopback<S: ::oauth_sdk_runtime::TokenStore>(
                self,
                store: S,
                scopes: &[&str],
                open: impl FnOnce(&::oauth_sdk_runtime::Url),
            ) -> ::std::result::Result<Authenticated<S>, ::oauth_sdk_runtime::Error> {
                self.inner
                    .login_with_loopback(store, scopes, ::oauth_sdk_runtime::DEFAULT_LOOPBACK_TIMEOUT, open)
                    .await
            }
        }
    });
    let login_device = model.device.as_ref().map(|_| {
        quote! {
            /// The first step of the device login (RFC 8628): the user code and the verification URI
            /// to show the user, asking for `scopes` (empty: the configured scopes, default every
            /// scope the flow declares).
            ///
            /// Generated because the spec (or the generator's options) declares a device flow.
            pub async fn device_authorization(
                &self,
                scopes: &[&str],
            ) -> ::std::result::Result<::oauth_sdk_runtime::DeviceAuthorization, ::oauth_sdk_runtime::Error> {
                self.inner.device_authorization(scopes).await
            }

            /// The second step: poll the token endpoint at the server's interval until the user
            /// approves, and write the session to `store`. A declined login or an expired code is an
            /// [`Error::Authorization`](::oauth_sdk_runtime::Error::Authorization); drop the future to
            /// stop waiting.
            pub async fn login_device<S: ::oauth_sdk_runtime::TokenStore>(
                self,
                store: S,
                authorization: &::oauth_sdk_runtime::DeviceAuthorization,
            ) -> ::std::result::Result<Authenticated<S>, ::oauth_sdk_runtime::Error> {
                self.inner.login_with_device_code(store, authorization).await
            }
        }
    });
    let login_password = model.password.as_ref().map(|_| {
        quote! {
            /// Log in with a user's name and password (the password grant), asking for the scopes set
            /// with [`ClientBuilder::scopes`](::oauth_sdk_runtime::ClientBuilder::scopes) (default: every scope the
            /// spec's password flow declares). The session is written to `store`, replacing any
            /// session there.
            ///
            /// Generated because the spec declares a password flow.
            pub async fn login_password<S: ::oauth_sdk_runtime::TokenStore>(
                self,
                store: S,
                username: &str,
                password: ::oauth_sdk_runtime::SecretString,
            ) -> ::std::result::Result<Authenticated<S>, ::oauth_sdk_runtime::Error> {
                self.inner.login_with_password(store, username, password).await
            }
        }
    });
    let login_client_credentials = model.client_credentials.as_ref().map(|_| {
        quote! {
            /// Log in as the client itself (the client-credentials grant), asking for `scopes`
            /// (empty: every scope the spec's client-credentials flow declares). Such a session has
            /// no refresh token; it is renewed by asking again with the client's credentials.
            ///
            /// Generated because the spec declares a client-credentials flow.
            pub async fn login_client_credentials<S: ::oauth_sdk_runtime::TokenStore>(
                self,
                store: S,
                scopes: &[&str],
            ) -> ::std::result::Result<Authenticated<S>, ::oauth_sdk_runtime::Error> {
                self.inner.login_with_client_credentials(store, scopes).await
            }
        }
    });
    quote! {
        /// The OAuth flows `components.securitySchemes` declares.
        const SPEC_FLOWS: ::oauth_sdk_runtime::__private::SpecFlows = ::oauth_sdk_runtime::__private::SpecFlows {
            password: #password,
            client_credentials: #client_credentials,
            authorization_code: #authorization_code,
            device: #device,
        };

        /// Logging in, with the OAuth flows the spec declares.
        impl Client {
            #login_password
            #login_client_credentials
            #login_authorization_code
            #login_device
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(fixture: &str) -> AuthModel {
        let path = format!("{}/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let (spec, _) = crate::spec::read(fixture, &text).unwrap();
        analyse(fixture, &spec).unwrap()
    }

    fn access(model: &AuthModel) -> Vec<(&str, Access)> {
        model.operations.iter().map(|o| (o.label.as_str(), o.access)).collect()
    }

    #[test]
    fn taskboard_health_is_public_and_the_rest_protected() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/taskboard.json");
        let (spec, _) = crate::spec::read("taskboard.json", &std::fs::read_to_string(path).unwrap()).unwrap();
        let model = analyse("taskboard.json", &spec).unwrap();
        let public: Vec<_> = model
            .operations
            .iter()
            .filter(|o| o.access != Access::Required)
            .map(|o| o.label.as_str())
            .collect();
        assert_eq!(public, ["GET /v1/health"]);
        let me = model.operations.iter().find(|o| o.label == "GET /v1/me").unwrap();
        assert_eq!(me.scopes, ["tasks.read"]);
        let password = model.password.unwrap();
        assert_eq!(password.token_url, "/oauth/token");
        assert_eq!(password.refresh_url.as_deref(), Some("/oauth/token"));
        assert_eq!(password.scopes, ["tasks.read", "tasks.write"]);
        assert!(model.client_credentials.is_some());
    }

    #[test]
    fn mixed_fixture_reads_global_operation_and_optional_security() {
        let model = model("mixed.json");
        assert_eq!(
            access(&model),
            [
                ("GET /status", Access::Public),
                ("GET /feed", Access::Optional),
                ("GET /account", Access::Required),
                ("POST /account", Access::Required),
            ]
        );
        assert_eq!(model.operations[3].scopes, ["account.read", "account.write"]);
    }

    #[test]
    fn no_security_at_all_means_everything_is_public() {
        let model = model("no-security.json");
        assert!(model.operations.iter().all(|o| o.access == Access::Public));
        assert!(model.password.is_none() && model.client_credentials.is_none());
    }

    #[test]
    fn one_flow_fixtures_declare_one_flow() {
        let password = model("password-only.json");
        assert!(password.password.is_some() && password.client_credentials.is_none());
        let cc = model("client-credentials-only.json");
        assert!(cc.password.is_none());
        assert_eq!(
            cc.client_credentials.unwrap().token_url,
            "https://auth.example.com/token"
        );
    }

    #[test]
    fn operations_protected_only_by_an_api_key_are_public_and_said() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},
            "components":{"securitySchemes":{"key":{"type":"apiKey","in":"header","name":"X-Key"},
              "oauth2":{"type":"oauth2","flows":{"clientCredentials":{"tokenUrl":"/t","scopes":{}}}}}},
            "paths":{"/a":{"get":{"operationId":"a","security":[{"key":[]}],"responses":{"200":{"description":"ok"}}}},
                     "/b":{"get":{"operationId":"b","security":[{"key":[]},{"oauth2":[]}],"responses":{"200":{"description":"ok"}}}}}}"#;
        let (spec, _) = crate::spec::read("x.json", text).unwrap();
        let model = analyse("x.json", &spec).unwrap();
        assert_eq!(
            access(&model),
            [("GET /a", Access::Public), ("GET /b", Access::Required)]
        );
        assert_eq!(model.warnings.len(), 1);
        assert!(
            model.warnings[0].contains("require only `key`, which is not OAuth 2"),
            "{:?}",
            model.warnings
        );
        assert!(model.warnings[0].contains("Operations: GET /a"));
    }

    #[test]
    fn an_operation_requiring_an_undeclared_scheme_is_left_out_naming_it() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},
            "paths":{"/a":{"get":{"operationId":"a","security":[{"nope":[]}],"responses":{"200":{"description":"ok"}}}},
                     "/b":{"get":{"operationId":"b","responses":{"200":{"description":"ok"}}}}}}"#;
        let (spec, said) = crate::spec::read("x.json", text).unwrap();
        assert_eq!(
            said,
            [
                "x.json: GET /a (operationId `a`) left out: it requires security scheme `nope`, which \
              `components.securitySchemes` does not declare (at /paths/~1a/get)"
            ]
        );
        let model = analyse("x.json", &spec).unwrap();
        assert_eq!(model.operations.len(), 1);
        // Should one get through anyway, the analysis refuses it rather than treat it as public.
        let mut spec = spec;
        spec.security = Some(vec![[("nope".to_owned(), vec![])].into_iter().collect()]);
        let err = analyse("x.json", &spec).unwrap_err();
        assert!(
            err.problem.contains("`GET /b` requires security scheme `nope`"),
            "{err}"
        );
    }

    #[test]
    fn the_implicit_flow_is_refused_with_a_warning_and_the_way_in_that_remains() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"security":[{"o":["read"]}],
            "components":{"securitySchemes":{"o":{"type":"oauth2","flows":{
                "implicit":{"authorizationUrl":"https://id.example.com/authorize","scopes":{"read":"r"}}}}}},
            "paths":{"/a":{"get":{"operationId":"a","responses":{"200":{"description":"ok"}}}}}}"#;
        let (spec, _) = crate::spec::read("x.json", text).unwrap();
        let model = analyse("x.json", &spec).unwrap();
        let [warning] = &model.warnings[..] else {
            panic!("{:?}", model.warnings)
        };
        assert!(
            warning.starts_with(
                "x.json: OAuth scheme `o` declares the `implicit` flow, for which the SDK generates no login: RFC 9700"
            ),
            "{warning}"
        );
        assert!(warning.contains("`Client::start_session`"), "{warning}");
        // Beside a flow the SDK logs in with, only the refusal is said.
        let with_code = text.replace(
            "\"implicit\":{",
            "\"authorizationCode\":{\"tokenUrl\":\"https://id.example.com/token\",\"authorizationUrl\":\"https://id.example.com/authorize\",\"scopes\":{\"read\":\"r\"}},\"implicit\":{",
        );
        let model = analyse("x.json", &crate::spec::read("x.json", &with_code).unwrap().0).unwrap();
        let code = model.authorization_code.unwrap();
        assert_eq!(
            code.authorization_url.as_deref(),
            Some("https://id.example.com/authorize")
        );
        assert!(
            model.warnings[0].ends_with("hands the token to the browser"),
            "{:?}",
            model.warnings
        );
    }

    #[test]
    fn an_openapi_3_2_device_flow_is_read() {
        let text = r#"{"openapi":"3.2.0","info":{"title":"t","version":"1"},"security":[{"o":[]}],
            "components":{"securitySchemes":{"o":{"type":"oauth2","flows":{
                "deviceAuthorization":{"deviceAuthorizationUrl":"https://id.example.com/device","tokenUrl":"https://id.example.com/token","scopes":{"b":"","a":""}}}}}},
            "paths":{"/a":{"get":{"operationId":"a","responses":{"200":{"description":"ok"}}}}}}"#;
        let (spec, _) = crate::spec::read("x.json", text).unwrap();
        let model = analyse("x.json", &spec).unwrap();
        let device = model.device.unwrap();
        assert_eq!(
            device.authorization_url.as_deref(),
            Some("https://id.example.com/device")
        );
        assert_eq!(device.token_url, "https://id.example.com/token");
        assert_eq!(device.scopes, ["b", "a"]);
        assert!(
            model.authorization_code.is_none() && model.warnings.is_empty(),
            "{:?}",
            model.warnings
        );
    }
}

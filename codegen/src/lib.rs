//! Build-time generator for `oauth-sdk`.
//!
//! [`generate`] turns an OpenAPI 3.0 document into one Rust source file:
//!
//! 1. progenitor's typed client (types, and one async method per operation), whose every request goes
//!    through the SDK's executor (`ClientHooks`, hooks mode `Expected`);
//! 2. what progenitor ignores, read from the spec's `security` ([`security`]): which operations need a
//!    token, the scopes each asks for, and the OAuth flows with their token URLs;
//! 3. progenitor's methods rewritten ([`rewrite`]): less work per request, and the executor's reports handed back;
//! 4. forwarders ([`forwarders`]) that put every operation on `Authenticated<S>` and the public ones on
//!    the logged-out `Client`, so the spec alone decides what can be called before login.
//!
//! `build.rs` is a short script around [`generate`]; everything that can fail here fails with a
//! [`CodegenError`] naming the file and what to change, never with a panic backtrace.

pub mod forwarders;
pub mod normalize;
pub mod rewrite;
pub mod security;
pub mod spec;

use std::fmt;
use std::path::Path;

use proc_macro2::TokenStream;
use quote::quote;

/// What went wrong, with the spec file it concerns, phrased for the person who has to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodegenError {
    /// The spec file (as given to [`generate`]).
    pub file: String,
    /// What is wrong and what to change.
    pub problem: String,
}

impl CodegenError {
    pub(crate) fn new(file: &str, problem: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.problem)
    }
}

impl std::error::Error for CodegenError {}

/// The generated source file.
#[derive(Debug)]
pub struct Generated {
    /// Formatted Rust source, to be `include!`d from one private module of the SDK.
    pub code: String,
    /// Things the user should know about (each becomes a `cargo:warning`).
    pub warnings: Vec<String>,
}

/// Generate the SDK's API module from the spec at `path`.
pub fn generate(path: &Path) -> Result<Generated, CodegenError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| CodegenError::new(&name, format!("cannot read the spec: {e}")))?;
    generate_from_str(&name, &text)
}

/// Generate the SDK's API module from spec text; `name` is used in messages.
pub fn generate_from_str(name: &str, text: &str) -> Result<Generated, CodegenError> {
    let (spec, notes) = spec::parse(name, text)?;
    let mut auth = security::analyse(name, &spec)?;
    auth.warnings.splice(0..0, notes);
    let mut client: syn::File = syn::parse2(run_progenitor(name, &spec)?)
        .map_err(|e| CodegenError::new(name, format!("internal error reading progenitor's output: {e}")))?;
    let handed_back = rewrite::apply(&mut client);
    if handed_back != auth.operations.len() {
        return Err(CodegenError::new(
            name,
            format!(
                "internal error reading progenitor's output: {handed_back} status matches for {} operations",
                auth.operations.len()
            ),
        ));
    }
    let methods = forwarders::collect(name, &client, &auth)?;

    let forwarders = forwarders::emit(&methods);
    let security = security::emit(&auth);
    let file: TokenStream = quote! {
        #client
        #security
        #forwarders
    };
    let syntax = syn::parse2::<syn::File>(file)
        .map_err(|e| CodegenError::new(name, format!("internal error: generated code does not parse: {e}")))?;
    Ok(Generated {
        code: prettyplease::unparse(&syntax),
        warnings: auth.warnings,
    })
}

/// Run progenitor, turning both its errors and its panics (it asserts on constructs it does not
/// support) into a [`CodegenError`].
fn run_progenitor(name: &str, spec: &openapiv3::OpenAPI) -> Result<TokenStream, CodegenError> {
    let mut settings = progenitor::GenerationSettings::new();
    settings
        .with_interface(progenitor::InterfaceStyle::Positional)
        .with_tag(progenitor::TagStyle::Merged)
        .with_inner_type(quote!(crate::executor::Executor))
        .with_hooks(progenitor::HooksMode::Expected);
    let mut generator = progenitor::Generator::new(&settings);

    let outcome = quietly(|| generator.generate_tokens(spec));

    match outcome {
        Ok(Ok(tokens)) => Ok(tokens),
        Ok(Err(e)) => Err(CodegenError::new(
            name,
            format!("progenitor cannot generate a client from this spec: {e}"),
        )),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            let advice = if what.contains("response_types") {
                "An operation has more than one success type or more than one error type: give each \
                 operation one success schema and one error schema."
            } else {
                "Change or remove the construct it names (a `$ref` must point to a component that exists)."
            };
            Err(CodegenError::new(
                name,
                format!("progenitor stopped on a construct it does not support ({what}). {advice}"),
            ))
        }
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f`, catching a panic without printing it (we report it as a [`CodegenError`]). Panics on other
/// threads still reach the previous hook.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.get() {
                previous(info)
            }
        }));
    });
    QUIET.set(true);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.set(false);
    outcome
}

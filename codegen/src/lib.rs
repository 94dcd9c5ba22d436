//! The build-time half of an OAuth 2 SDK: generates, from an OpenAPI spec, the typed module that runs
//! on [`oauth-sdk-runtime`](https://docs.rs/oauth-sdk-runtime).
//!
//! In the SDK crate's `build.rs` (`fn main`):
//!
//! ```no_run
//! oauth_sdk_codegen::build("openapi/my-api.yaml", "my_api.rs");
//! ```
//!
//! and in its source, `oauth_sdk_runtime::include_api!(pub my_api, "my_api.rs");`. The crate needs
//! `oauth-sdk-runtime` in `[dependencies]` and nothing else: the generated code names every crate it
//! uses through the runtime.
//!
//! [`generate`] turns an OpenAPI 3.0 document (JSON or YAML) into one Rust source file:
//!
//! 1. progenitor's typed client (types, and one async method per operation), whose every request goes
//!    through the runtime's executor (`ClientHooks`, hooks mode `Expected`), kept in a private module;
//! 2. what progenitor ignores, read from the spec's `security` ([`security`]): which operations need a
//!    token, the scopes each asks for, and the OAuth flows with their token URLs;
//! 3. progenitor's methods trimmed of per-request work ([`rewrite`]);
//! 4. the module's `Client` and `Authenticated<S>` ([`typestate`]), and forwarders ([`forwarders`]) that
//!    put every operation on `Authenticated<S>` and the public ones on `Client`, so the spec alone
//!    decides what can be called before login;
//! 5. every crate named through the runtime ([`paths`]).
//!
//! Everything that can fail here fails with a [`CodegenError`] naming the file and what to change,
//! never with a panic backtrace.

pub mod forwarders;
pub mod normalize;
pub mod paths;
pub mod rewrite;
pub mod security;
pub mod spec;
pub mod typestate;

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

/// For `build.rs`: generate the module for the spec at `spec` (relative to the crate, JSON or YAML)
/// into `OUT_DIR/<file>`, to be included with `oauth_sdk_runtime::include_api!`. Cargo reruns it when
/// the spec changes; the generator's warnings become cargo warnings. A spec that cannot be generated
/// stops the build with one line naming the file and what to change.
pub fn build(spec: impl AsRef<Path>, file: &str) {
    let spec = spec.as_ref();
    println!("cargo:rerun-if-changed={}", spec.display());
    let generated = match generate(spec) {
        Ok(generated) => generated,
        Err(error) => {
            eprintln!("error: {error}");
            println!("cargo:warning={error}");
            std::process::exit(1);
        }
    };
    for warning in &generated.warnings {
        println!("cargo:warning={warning}");
    }
    let Some(out) = std::env::var_os("OUT_DIR") else {
        eprintln!("error: OUT_DIR is not set: call oauth_sdk_codegen::build from a build script");
        std::process::exit(1);
    };
    let out = Path::new(&out).join(file);
    if let Err(error) = std::fs::write(&out, generated.code) {
        eprintln!("error: cannot write {}: {error}", out.display());
        std::process::exit(1);
    }
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
    rewrite::apply(&mut client);
    let methods = forwarders::collect(name, &client, &auth)?;
    auth.warnings.extend(forwarders::renamed(&methods));

    let typestate = typestate::emit(&spec.info.title, &client);
    let forwarders = forwarders::emit(&methods);
    let security = security::emit(&auth);
    let file: TokenStream = quote! {
        #typestate
        #security
        #forwarders
    };
    let mut syntax = syn::parse2::<syn::File>(file)
        .map_err(|e| CodegenError::new(name, format!("internal error: generated code does not parse: {e}")))?;
    paths::apply(&mut syntax);
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
        .with_inner_type(quote!(::oauth_sdk_runtime::__private::Executor))
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

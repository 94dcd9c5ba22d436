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
//! [`generate`] turns an OpenAPI 3.0 or 3.1 document (JSON or YAML; 3.1 is converted to 3.0 first,
//! [`openapi31`]), repaired where progenitor would refuse it ([`normalize`]), into one Rust source
//! file; an operation that still cannot be generated is left out with a warning ([`degrade`]):
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
//! What fails the build is a [`CodegenError`] naming the file and what to change, never a panic
//! backtrace: a document that cannot be read at all, or, with [`Options::strict`], any operation
//! left out.

pub mod degrade;
pub mod forwarders;
pub mod normalize;
pub mod openapi31;
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
    /// What the generator had said before it stopped (normalisation notes, operations left out), so
    /// that a failed build still shows them.
    pub warnings: Vec<String>,
}

impl CodegenError {
    pub(crate) fn new(file: &str, problem: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            problem: problem.into(),
            warnings: Vec::new(),
        }
    }

    fn with_warnings(mut self, warnings: &[String]) -> Self {
        self.warnings.splice(0..0, warnings.iter().cloned());
        self
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
    /// Things the user should know about (each becomes a `cargo:warning`), the operations left out
    /// among them.
    pub warnings: Vec<String>,
    /// The operations left out of the module, with why.
    pub left_out: Vec<degrade::LeftOut>,
    /// How many operations the module has.
    pub operations: usize,
}

/// How strict the generator is.
#[derive(Debug, Clone, Default)]
pub struct Options {
    strict: bool,
    device_authorization_url: Option<String>,
}

/// The environment variable that makes [`build`] strict: `1` or `true`.
pub const STRICT_ENV: &str = "OAUTH_SDK_STRICT";

impl Options {
    /// The defaults: lenient (an operation that cannot be generated is left out, with a warning).
    pub fn new() -> Self {
        Self::default()
    }

    /// Strict: an operation that cannot be generated fails the build (every such operation is
    /// named), instead of being left out with a warning. Normalisation's repairs stay warnings.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Declare an RFC 8628 device authorization endpoint for a spec that cannot say it (OpenAPI 3.0
    /// and 3.1 have no device flow; 3.2's `deviceAuthorization` is read without this): the module
    /// then has the device login, redeemed at the token URL of the spec's authorization-code flow
    /// (else its password or client-credentials flow). Relative URLs are taken relative to the
    /// client's base URL.
    pub fn device_authorization_url(mut self, url: impl Into<String>) -> Self {
        self.device_authorization_url = Some(url.into());
        self
    }

    /// The defaults, strict if [`STRICT_ENV`] is `1` or `true`.
    pub fn from_env() -> Self {
        let strict = std::env::var(STRICT_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        Self {
            strict,
            ..Self::default()
        }
    }
}

/// For `build.rs`: generate the module for the spec at `spec` (relative to the crate, JSON or YAML)
/// into `OUT_DIR/<file>`, to be included with `oauth_sdk_runtime::include_api!`. Cargo reruns it when
/// the spec changes; the generator's warnings become cargo warnings. A spec that cannot be generated
/// stops the build with one line naming the file and what to change.
///
/// An operation that cannot be generated is left out with a warning naming it; with
/// `OAUTH_SDK_STRICT=1` in the build's environment (or [`build_with`] and [`Options::strict`]) it
/// fails the build instead.
pub fn build(spec: impl AsRef<Path>, file: &str) {
    build_with(spec, file, &Options::from_env());
}

/// [`build`], with the given options.
pub fn build_with(spec: impl AsRef<Path>, file: &str, options: &Options) {
    let spec = spec.as_ref();
    println!("cargo:rerun-if-changed={}", spec.display());
    // For `Options::from_env`, whichever way the options were made.
    println!("cargo:rerun-if-env-changed={STRICT_ENV}");
    let generated = match generate_with(spec, options) {
        Ok(generated) => generated,
        Err(error) => {
            for warning in &error.warnings {
                println!("cargo:warning={warning}");
            }
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

/// Generate the SDK's API module from the spec at `path`, leniently ([`Options::new`]).
pub fn generate(path: &Path) -> Result<Generated, CodegenError> {
    generate_with(path, &Options::new())
}

/// Generate the SDK's API module from the spec at `path`.
pub fn generate_with(path: &Path, options: &Options) -> Result<Generated, CodegenError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| CodegenError::new(&name, format!("cannot read the spec: {e}")))?;
    generate_from_str(&name, &text, options)
}

/// Generate the SDK's API module from spec text; `name` is used in messages.
pub fn generate_from_str(name: &str, text: &str, options: &Options) -> Result<Generated, CodegenError> {
    let mut left_out = Vec::new();
    let mut notes = Vec::new();
    let outcome = generate_inner(name, text, options, &mut left_out, &mut notes);
    notes.extend(left_out.iter().map(|l| format!("{name}: {l}")));
    let mut generated = outcome.map_err(|e| e.with_warnings(&notes))?;
    if options.strict && !left_out.is_empty() {
        let problem = format!(
            "{} operation(s) cannot be generated, and {STRICT_ENV} is set: {}",
            left_out.len(),
            left_out.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        );
        return Err(CodegenError::new(name, problem).with_warnings(&notes));
    }
    generated.warnings.splice(0..0, notes);
    generated.left_out = left_out;
    Ok(generated)
}

fn generate_inner(
    name: &str,
    text: &str,
    options: &Options,
    left_out: &mut Vec<degrade::LeftOut>,
    notes: &mut Vec<String>,
) -> Result<Generated, CodegenError> {
    let (mut value, normalised) = spec::parse(name, text, left_out)?;
    notes.extend(normalised);
    degrade::read(name, &mut value, left_out, notes)?;
    let (spec, tokens) = degrade::generate(name, value, left_out, notes, &|spec| run_progenitor(spec))?;
    let mut auth = security::analyse(name, &spec)?;
    if let Some(url) = &options.device_authorization_url {
        auth.declare_device_flow(name, url)?;
    }
    let mut client: syn::File = syn::parse2(tokens)
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
        left_out: Vec::new(),
        operations: methods.len(),
    })
}

/// Run progenitor, turning both its errors and its panics (it asserts on constructs it does not
/// support) into a message saying what it refused.
fn run_progenitor(spec: &openapiv3::OpenAPI) -> Result<TokenStream, String> {
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
        Ok(Err(e)) => Err(format!("progenitor cannot generate a client from this spec: {e}")),
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
            Err(format!(
                "progenitor stopped on a construct it does not support ({what}). {advice}"
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

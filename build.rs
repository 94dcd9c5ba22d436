//! Generates the typed API from the OpenAPI spec (see `codegen/` for how).
//!
//! The spec is `openapi/taskboard.json` unless `OAUTH_SDK_SPEC` names another file (relative to this
//! crate). Editing the spec and running `cargo build` regenerates everything.

use std::path::{Path, PathBuf};

const DEFAULT_SPEC: &str = "openapi/taskboard.json";

fn main() {
    println!("cargo:rerun-if-env-changed=OAUTH_SDK_SPEC");
    let spec = std::env::var("OAUTH_SDK_SPEC").unwrap_or_else(|_| DEFAULT_SPEC.to_owned());
    println!("cargo:rerun-if-changed={spec}");
    // Examples written for the demo API are compiled only when building it.
    println!("cargo::rustc-check-cfg=cfg(demo_spec)");
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
    if spec == DEFAULT_SPEC {
        println!("cargo::rustc-cfg=demo_spec");
    }

    let generated = match oauth_sdk_codegen::generate(Path::new(&spec)) {
        Ok(generated) => generated,
        Err(error) => {
            // One clear line in cargo's output instead of a panic backtrace.
            eprintln!("error: {error}");
            println!("cargo:warning={error}");
            std::process::exit(1);
        }
    };
    for warning in &generated.warnings {
        println!("cargo:warning={warning}");
    }

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("api.rs");
    if let Err(error) = std::fs::write(&out, generated.code) {
        eprintln!("error: cannot write {}: {error}", out.display());
        std::process::exit(1);
    }
}

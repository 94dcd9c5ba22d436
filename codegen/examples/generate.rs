//! Print the code generated for a spec: `cargo run -p oauth-sdk-codegen --example generate -- SPEC`.
//!
//! With `--summary`, print instead one JSON line: how many operations were generated, which were
//! left out and why, and how many warnings (`scripts/check-specs` writes SPECS.md from it).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let summary = args.iter().any(|a| a == "--summary");
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: generate [--summary] SPEC");
        std::process::exit(2);
    };
    match oauth_sdk_codegen::generate(std::path::Path::new(path)) {
        Ok(generated) if summary => {
            let left_out: Vec<String> = generated.left_out.iter().map(ToString::to_string).collect();
            let line = serde_json::json!({
                "generated": generated.operations,
                "left_out": left_out,
                "warnings": generated.warnings.len(),
            });
            println!("{line}");
        }
        Ok(generated) => {
            for warning in generated.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", generated.code);
        }
        Err(error) => {
            for warning in &error.warnings {
                eprintln!("warning: {warning}");
            }
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}

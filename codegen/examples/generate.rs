//! Print the code generated for a spec: `cargo run -p oauth-sdk-codegen --example generate -- SPEC`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: generate SPEC");
        std::process::exit(2);
    };
    match oauth_sdk_codegen::generate(std::path::Path::new(&path)) {
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

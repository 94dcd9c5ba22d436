//! Generates the Taskboard API from its OpenAPI spec, as any SDK built on `oauth-sdk-runtime` does.
//! Editing `openapi/taskboard.json` and running `cargo build` regenerates everything.
//!
//! The spec is OpenAPI 3.0, which has no device flow: the device authorization endpoint of the
//! reference server is declared here, and the module gets the device login.

fn main() {
    let options = oauth_sdk_codegen::Options::from_env().device_authorization_url("/oauth/device_authorization");
    oauth_sdk_codegen::build_with("openapi/taskboard.json", "taskboard.rs", &options);
}

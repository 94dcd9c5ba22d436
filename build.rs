//! Generates the Taskboard API from its OpenAPI spec, as any SDK built on `oauth-sdk-runtime` does.
//! Editing `openapi/taskboard.json` and running `cargo build` regenerates everything.

fn main() {
    oauth_sdk_codegen::build("openapi/taskboard.json", "taskboard.rs");
}

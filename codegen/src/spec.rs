//! Reading the spec: JSON, OpenAPI 3.0.x, every operation named.

use openapiv3::OpenAPI;

use crate::CodegenError;

/// Parse and check a spec, so that what reaches progenitor is something it can take.
pub fn parse(name: &str, text: &str) -> Result<OpenAPI, CodegenError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        CodegenError::new(
            name,
            format!(
                "not valid JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            ),
        )
    })?;

    let version = value
        .get("openapi")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            CodegenError::new(
                name,
                "no `openapi` version field: this does not look like an OpenAPI 3.0 document \
             (Swagger 2.0 documents must be converted to OpenAPI 3.0 first)",
            )
        })?;
    if !version.trim().starts_with("3.0.") {
        return Err(CodegenError::new(
            name,
            format!(
                "the spec is OpenAPI {version}, but progenitor accepts only OpenAPI 3.0.x. Convert it to 3.0 \
                 (for 3.1: replace `type: [X, \"null\"]` with `type: X` plus `nullable: true`, \
                 `examples` in schemas with `example`, and set `openapi: 3.0.3`)"
            ),
        ));
    }

    let spec: OpenAPI = serde_path_to_error::deserialize(value).map_err(|e| {
        CodegenError::new(
            name,
            format!(
                "not a valid OpenAPI 3.0 document at `{}`: {}",
                e.path(),
                e.inner()
            ),
        )
    })?;

    for (path, item) in spec.paths.iter() {
        let Some(item) = item.as_item() else {
            return Err(CodegenError::new(
                name,
                format!(
                    "path `{path}` is a `$ref`; inline the path item (progenitor does not follow path references)"
                ),
            ));
        };
        for (method, operation) in item.iter() {
            if operation.operation_id.as_deref().is_none_or(str::is_empty) {
                return Err(CodegenError::new(
                    name,
                    format!(
                        "operation `{} {path}` has no `operationId`; add one (it becomes the method name)",
                        method.to_uppercase()
                    ),
                ));
            }
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_3_1_is_refused_with_what_to_change() {
        let err = parse(
            "fixtures/openapi-3.1.json",
            include_str!("../fixtures/openapi-3.1.json"),
        )
        .unwrap_err();
        assert_eq!(err.file, "fixtures/openapi-3.1.json");
        assert!(err.problem.contains("OpenAPI 3.1.0"), "{err}");
        assert!(err.problem.contains("only OpenAPI 3.0.x"), "{err}");
    }

    #[test]
    fn broken_json_names_the_position() {
        let err = parse("x.json", "{\n  \"openapi\": \"3.0.3\",\n  oops\n}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("x.json: not valid JSON (line 3"),
            "{err}"
        );
    }

    #[test]
    fn missing_operation_id_names_the_operation() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},
            "paths":{"/a":{"get":{"responses":{"200":{"description":"ok"}}}}}}"#;
        let err = parse("x.json", text).unwrap_err();
        assert!(
            err.problem.contains("`GET /a` has no `operationId`"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_field_is_located() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/a":{"get":{"responses":7}}}}"#;
        let err = parse("x.json", text).unwrap_err();
        assert!(err.problem.contains("at `paths`"), "{err}");
        assert!(err.problem.contains("expected struct Responses"), "{err}");
    }
}

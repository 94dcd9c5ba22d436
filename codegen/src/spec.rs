//! Reading the spec: JSON or YAML, OpenAPI 3.0.x, normalised into what progenitor takes.

use openapiv3::OpenAPI;

use crate::CodegenError;
use crate::normalize::{Note, normalize};

/// Parse, check and normalise a spec, so that what reaches progenitor is something it can take.
/// Returns the spec and what normalisation changed or left out.
pub fn parse(name: &str, text: &str) -> Result<(OpenAPI, Vec<String>), CodegenError> {
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let mut value: serde_json::Value = if yaml {
        serde_norway::from_str(text).map_err(|e| CodegenError::new(name, format!("not valid YAML: {e}")))?
    } else {
        serde_json::from_str(text).map_err(|e| {
            CodegenError::new(
                name,
                format!("not valid JSON (line {}, column {}): {e}", e.line(), e.column()),
            )
        })?
    };

    let version = value.get("openapi").and_then(|v| v.as_str()).ok_or_else(|| {
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

    let notes: Vec<String> = normalize(&mut value)
        .into_iter()
        .map(|Note(note)| format!("{name}: {note}"))
        .collect();
    one_type_per_outcome(name, &value)?;
    let spec: OpenAPI = serde_path_to_error::deserialize(value).map_err(|e| {
        CodegenError::new(
            name,
            format!("not a valid OpenAPI 3.0 document at `{}`: {}", e.path(), e.inner()),
        )
    })?;

    if let Some(path) = spec
        .paths
        .iter()
        .find_map(|(path, item)| item.as_item().is_none().then_some(path))
    {
        return Err(CodegenError::new(
            name,
            format!("path `{path}` is a `$ref`; inline the path item (progenitor does not follow path references)"),
        ));
    }
    Ok((spec, notes))
}

/// progenitor needs one success type and one error type per operation; say which operation has more,
/// and which statuses, instead of letting it stop on an assertion.
fn one_type_per_outcome(name: &str, spec: &serde_json::Value) -> Result<(), CodegenError> {
    let paths = spec.get("paths").and_then(|p| p.as_object()).into_iter().flatten();
    for (path, item) in paths {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let Some(responses) = operation.get("responses").and_then(|r| r.as_object()) else {
                continue;
            };
            for (outcome, matches) in [
                ("success", (|s: &str| s.starts_with('2')) as fn(&str) -> bool),
                ("error", |s: &str| {
                    s.starts_with('4') || s.starts_with('5') || s == "default"
                }),
            ] {
                let typed: Vec<(&String, String)> = responses
                    .iter()
                    .filter(|(status, _)| matches(status))
                    .filter_map(|(status, r)| Some((status, r.get("content")?.to_string())))
                    .collect();
                if typed.iter().any(|(_, content)| *content != typed[0].1) {
                    let statuses: Vec<&str> = typed.iter().map(|(s, _)| s.as_str()).collect();
                    return Err(CodegenError::new(
                        name,
                        format!(
                            "`{} {path}` has {outcome} responses with different bodies ({}); progenitor needs one \
                             {outcome} type per operation: give them one schema, or remove all but one",
                            method.to_uppercase(),
                            statuses.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
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
        assert!(err.to_string().starts_with("x.json: not valid JSON (line 3"), "{err}");
    }

    #[test]
    fn a_missing_operation_id_is_synthesised_and_said() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},
            "paths":{"/a":{"get":{"responses":{"200":{"description":"ok"}}}}}}"#;
        let (spec, notes) = parse("x.json", text).unwrap();
        let operation = spec.paths.paths["/a"].as_item().unwrap().get.as_ref().unwrap();
        assert_eq!(operation.operation_id.as_deref(), Some("get_a"));
        assert_eq!(notes, ["x.json: GET /a has no operationId: named it `get_a`"]);
    }

    #[test]
    fn yaml_specs_are_read_too() {
        let text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      operationId: a\n      responses:\n        '200': {description: ok}\n";
        let (spec, notes) = parse("api.yaml", text).unwrap();
        assert!(spec.paths.paths.contains_key("/a"));
        assert!(notes.is_empty());
        let err = parse("api.yml", "openapi: [").unwrap_err();
        assert!(err.problem.starts_with("not valid YAML"), "{err}");
    }

    #[test]
    fn a_bad_field_is_located() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{"/a":{"get":{"responses":7}}}}"#;
        let err = parse("x.json", text).unwrap_err();
        assert!(err.problem.contains("at `paths`"), "{err}");
        assert!(err.problem.contains("expected struct Responses"), "{err}");
    }
}

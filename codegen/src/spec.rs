//! Reading the spec: JSON or YAML, OpenAPI 3.0.x or 3.1.x (converted to 3.0), normalised into what
//! progenitor takes.

use serde_json::Value;

use crate::CodegenError;
use crate::degrade::LeftOut;
use crate::normalize::{Note, normalize};
use crate::openapi31;

/// Read a spec (JSON or YAML), check its version (3.1 is converted to 3.0), and normalise it into
/// what progenitor takes. Returns the document and what was changed; operations a rule leaves out
/// go to `left_out`.
pub fn parse(name: &str, text: &str, left_out: &mut Vec<LeftOut>) -> Result<(Value, Vec<String>), CodegenError> {
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let mut value: Value = if yaml {
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
            "no `openapi` version field: this does not look like an OpenAPI 3 document \
             (Swagger 2.0 documents must be converted to OpenAPI 3 first)",
        )
    })?;
    let version = version.trim().to_owned();
    let mut notes = Vec::new();
    if version.starts_with("3.1.") {
        notes.extend(openapi31::convert(&mut value));
    } else if version.starts_with("3.2.") {
        // 3.2 adds to 3.1 (the `query` method, streamed item schemas, the device flow...); read as
        // 3.1, what it adds is ignored but for the device flow.
        notes.push(Note(format!(
            "OpenAPI {version} is read as 3.1: what 3.2 adds is ignored, but for `deviceAuthorization` flows"
        )));
        notes.extend(openapi31::convert(&mut value));
    } else if !version.starts_with("3.0.") {
        return Err(CodegenError::new(
            name,
            format!("the spec is OpenAPI {version}; the generator reads OpenAPI 3.0.x, 3.1.x and 3.2.x"),
        ));
    }
    keep_device_flows(&mut value);
    notes.extend(normalize(&mut value, left_out));
    let notes = notes.into_iter().map(|Note(note)| format!("{name}: {note}")).collect();
    Ok((value, notes))
}

/// OpenAPI 3.2's `deviceAuthorization` flow, which the `openapiv3` model would drop, kept as the
/// extension [`security`](crate::security) reads.
fn keep_device_flows(value: &mut Value) {
    let schemes = value
        .pointer_mut("/components/securitySchemes")
        .and_then(Value::as_object_mut);
    for scheme in schemes.into_iter().flat_map(|schemes| schemes.values_mut()) {
        if let Some(flows) = scheme.get_mut("flows").and_then(Value::as_object_mut)
            && let Some(device) = flows.remove("deviceAuthorization")
        {
            flows.insert(crate::security::DEVICE_FLOW.to_owned(), device);
        }
    }
}

/// For tests: the spec as OpenAPI after normalisation, and what was said.
#[cfg(test)]
pub(crate) fn read(name: &str, text: &str) -> Result<(openapiv3::OpenAPI, Vec<String>), CodegenError> {
    let mut left_out = Vec::new();
    let (mut value, mut notes) = parse(name, text, &mut left_out)?;
    crate::degrade::read(name, &mut value, &mut left_out, &mut notes)?;
    notes.extend(left_out.iter().map(|l| format!("{name}: {l}")));
    let spec = serde_json::from_value(value).map_err(|e| CodegenError::new(name, e.to_string()))?;
    Ok((spec, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_versions_are_refused_naming_the_version() {
        let err = read(
            "x.json",
            r#"{"openapi":"4.0.0","info":{"title":"t","version":"1"},"paths":{}}"#,
        )
        .unwrap_err();
        assert_eq!(err.file, "x.json");
        assert!(
            err.problem
                .contains("OpenAPI 4.0.0; the generator reads OpenAPI 3.0.x, 3.1.x and 3.2.x"),
            "{err}"
        );
        let err = read("x.json", r#"{"swagger":"2.0"}"#).unwrap_err();
        assert!(err.problem.contains("Swagger 2.0"), "{err}");
    }

    #[test]
    fn broken_json_names_the_position() {
        let err = read("x.json", "{\n  \"openapi\": \"3.0.3\",\n  oops\n}").unwrap_err();
        assert!(err.to_string().starts_with("x.json: not valid JSON (line 3"), "{err}");
    }

    #[test]
    fn a_missing_operation_id_is_synthesised_and_said() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},
            "paths":{"/a":{"get":{"responses":{"200":{"description":"ok"}}}}}}"#;
        let (spec, notes) = read("x.json", text).unwrap();
        let operation = spec.paths.paths["/a"].as_item().unwrap().get.as_ref().unwrap();
        assert_eq!(operation.operation_id.as_deref(), Some("get_a"));
        assert_eq!(notes, ["x.json: GET /a has no operationId: named it `get_a`"]);
    }

    #[test]
    fn yaml_specs_are_read_too() {
        let text = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      operationId: a\n      responses:\n        '200': {description: ok}\n";
        let (spec, notes) = read("api.yaml", text).unwrap();
        assert!(spec.paths.paths.contains_key("/a"));
        assert!(notes.is_empty());
        let err = read("api.yml", "openapi: [").unwrap_err();
        assert!(err.problem.starts_with("not valid YAML"), "{err}");
    }

    #[test]
    fn a_bad_field_costs_only_its_operation_or_schema_and_is_located() {
        let text = r#"{"openapi":"3.0.3","info":{"title":"t","version":"1"},
            "paths":{"/a":{"get":{"operationId":"a","responses":7}},
                     "/b":{"get":{"operationId":"b","parameters":[{"name":"q","in":"query","required":"yes"}],"responses":{}}},
                     "/c":{"get":{"operationId":"c","responses":{}}}},
            "components":{"schemas":{"S":{"type":"object","required":false}}}}"#;
        let (spec, said) = read("x.json", text).unwrap();
        assert_eq!(spec.paths.paths.len(), 3);
        assert!(spec.paths.paths["/c"].as_item().unwrap().get.is_some());
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(said[0].contains("schema `S` is not a valid schema"), "{said:?}");
        assert!(
            said[1].starts_with("x.json: GET /a (operationId `a`) left out: not a valid OpenAPI operation: at `responses`: invalid type: integer `7`"),
            "{said:?}"
        );
        assert!(said[1].ends_with("(at /paths/~1a/get)"), "{said:?}");
        assert!(
            said[2].starts_with(
                "x.json: GET /b (operationId `b`) left out: not a valid OpenAPI operation: at `parameters"
            ),
            "{said:?}"
        );
    }
}

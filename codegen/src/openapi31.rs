//! OpenAPI 3.1 in: the document converted to the OpenAPI 3.0 that progenitor takes, before
//! normalisation. What has a 3.0 equivalent is converted; what has none is dropped, and said once
//! per construct with how many places had it.
//!
//! | 3.1 | 3.0 |
//! | --- | --- |
//! | `type: [X, "null"]`, `anyOf`/`oneOf` of one type and `{type: "null"}` | `type: X` (or `allOf: [X]`), `nullable: true` |
//! | `anyOf`/`oneOf` of several types and `{type: "null"}` | the same without the `null`; a field of that type is optional (reads null as absent) |
//! | `type: [X, Y]`, `type: "null"` alone | no `type` (any JSON value) |
//! | `const: v` | `enum: [v]` |
//! | numeric `exclusiveMinimum`/`exclusiveMaximum` | `minimum`/`maximum` with the boolean form |
//! | `examples: [..]` in a schema | `example`: the first |
//! | `$ref` with sibling keywords | `allOf: [{$ref}]` beside the siblings |
//! | `contentEncoding: base64`, `contentMediaType` | `format: byte`, `format: binary` |
//! | `true` / `false` as a schema | `{}` / `{not: {}}` |
//! | `prefixItems`, `$defs`, `if`/`then`/`else`, `unevaluated*`, `dependent*`... | dropped |
//! | `webhooks`, `jsonSchemaDialect`, `mutualTLS` security schemes | dropped |
//!
//! `components.pathItems` need nothing here: normalisation inlines every path item reference.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::normalize::{Note, walk_schemas};

/// Schema keywords of JSON Schema 2020-12 that OpenAPI 3.0 has no place for; each is dropped.
const DROPPED: [&str; 16] = [
    "prefixItems",
    "$defs",
    "$schema",
    "$id",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentRequired",
    "dependentSchemas",
    "propertyNames",
    "contains",
];

/// Marks, for a moment, a union that lost its `null`.
const NULL_DROPPED: &str = "x-oauth-sdk-null-dropped";

/// Convert a 3.1 document to 3.0 in place.
pub fn convert(spec: &mut Value) -> Vec<Note> {
    let mut notes = Vec::new();
    if let Some(object) = spec.as_object_mut() {
        object.insert("openapi".into(), "3.0.3".into());
        if let Some(Value::Object(webhooks)) = object.remove("webhooks") {
            notes.push(Note(format!(
                "OpenAPI 3.1: {} webhook(s) left out (a client does not receive webhooks)",
                webhooks.len()
            )));
        }
        if object.remove("jsonSchemaDialect").is_some() {
            notes.push(Note(
                "OpenAPI 3.1: `jsonSchemaDialect` ignored; schemas are read as OpenAPI 3.0 schemas".into(),
            ));
        }
        // A 3.1 document may have no paths (webhooks only); 3.0 requires the field.
        object.entry("paths").or_insert_with(|| json!({}));
    }
    if let Some(schemes) = spec
        .pointer_mut("/components/securitySchemes")
        .and_then(Value::as_object_mut)
    {
        let before = schemes.len();
        schemes.retain(|_, scheme| scheme.get("type").and_then(Value::as_str) != Some("mutualTLS"));
        if schemes.len() < before {
            notes.push(Note(
                "OpenAPI 3.1: `mutualTLS` security schemes left out (operations requiring one are left out)".into(),
            ));
        }
    }

    let mut lost: BTreeMap<&'static str, usize> = BTreeMap::new();
    walk_schemas(spec, &mut |schema, _| convert_schema(schema, &mut lost));
    // A required field whose union lost its `null` becomes optional, so that a `null` still reads
    // (as `None`); parents are visited before their properties, which then drop the mark.
    walk_schemas(spec, &mut |schema, _| {
        let marked: Vec<String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, property)| property.get(NULL_DROPPED).is_some())
            .map(|(name, _)| name.clone())
            .collect();
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|name| !name.as_str().is_some_and(|n| marked.iter().any(|m| m == n)));
        }
        schema.remove(NULL_DROPPED);
    });
    for (what, places) in lost {
        notes.push(Note(format!("OpenAPI 3.1: {what} ({places} place(s))")));
    }
    notes
}

/// One schema, and the boolean schemas directly under it; nested schemas are visited after it.
fn convert_schema(schema: &mut Map<String, Value>, lost: &mut BTreeMap<&'static str, usize>) {
    let mut say = |what: &'static str| *lost.entry(what).or_default() += 1;

    // `true` / `false` where a schema belongs (properties, items, combinators).
    let boolean = |value: &mut Value| {
        if let Value::Bool(b) = value {
            *value = if *b { json!({}) } else { json!({"not": {}}) };
        }
    };
    for (key, child) in schema.iter_mut() {
        match (key.as_str(), child) {
            ("properties", Value::Object(properties)) => properties.values_mut().for_each(boolean),
            ("items" | "not", child) => boolean(child),
            ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => items.iter_mut().for_each(boolean),
            _ => {}
        }
    }

    match schema.remove("type") {
        Some(Value::Array(types)) => {
            let null = types.iter().any(|t| t == "null");
            let others: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
            if null {
                schema.insert("nullable".into(), true.into());
            }
            match <[Value; 1]>::try_from(others) {
                Ok([only]) => {
                    schema.insert("type".into(), only);
                }
                Err(others) if others.is_empty() => {}
                Err(_) => say("a schema of several types is read as any JSON value"),
            }
        }
        Some(Value::String(t)) if t == "null" => say("a schema of type `null` is read as any JSON value"),
        Some(other) => {
            schema.insert("type".into(), other);
        }
        None => {}
    }

    for combinator in ["anyOf", "oneOf"] {
        let Some(Value::Array(members)) = schema.get_mut(combinator) else {
            continue;
        };
        let is_null = |m: &Value| m.get("type").is_some_and(|t| t == "null");
        if !members.iter().any(is_null) {
            continue;
        }
        members.retain(|m| !is_null(m));
        if let Some(Value::Array(members)) = schema.remove(combinator) {
            match <[Value; 1]>::try_from(members) {
                Ok([only]) => {
                    schema.insert("nullable".into(), true.into());
                    match schema.get_mut("allOf") {
                        Some(Value::Array(all)) => all.push(only),
                        _ => {
                            schema.insert("allOf".into(), json!([only]));
                        }
                    }
                }
                Err(members) if members.is_empty() => {
                    schema.insert("nullable".into(), true.into());
                }
                // typify turns a nullable union into a type that contains itself; without the
                // `null`, an optional field still reads `null` as absent (and a required one is
                // made optional below).
                Err(members) => {
                    say(
                        "`null` among several types of a oneOf/anyOf dropped; a field of such a type is optional, and reads null as absent",
                    );
                    schema.insert(combinator.into(), Value::Array(members));
                    schema.insert(NULL_DROPPED.into(), true.into());
                }
            }
        }
    }

    if let Some(value) = schema.remove("const") {
        schema.insert("enum".into(), json!([value]));
    }
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if let Some(limit) = schema.get(exclusive).filter(|v| v.is_number()).cloned() {
            schema.insert(bound.into(), limit);
            schema.insert(exclusive.into(), true.into());
        }
    }
    if let Some(Value::Array(mut examples)) = schema.remove("examples")
        && !examples.is_empty()
        && !schema.contains_key("example")
    {
        schema.insert("example".into(), examples.swap_remove(0));
    }
    match schema.remove("contentEncoding").as_ref().and_then(Value::as_str) {
        Some("base64") if !schema.contains_key("format") => {
            schema.insert("format".into(), "byte".into());
        }
        Some(_) => say("`contentEncoding` other than base64 dropped"),
        None => {}
    }
    if schema.remove("contentMediaType").is_some()
        && schema.get("type").is_some_and(|t| t == "string")
        && !schema.contains_key("format")
    {
        schema.insert("format".into(), "binary".into());
    }
    // A tuple: `items` then means "what follows the tuple" (`false` for a closed one), not every
    // element; it goes with `prefixItems`.
    if schema.contains_key("prefixItems") {
        schema.remove("items");
    }
    for keyword in DROPPED {
        if schema.remove(keyword).is_some() {
            say(match keyword {
                "prefixItems" => "`prefixItems` dropped: tuples are read as arrays of any JSON value",
                "$defs" => "`$defs` dropped: only `components/schemas` are read",
                "if" | "then" | "else" => "`if`/`then`/`else` dropped: the condition is not checked",
                "$schema" | "$id" | "$anchor" | "$dynamicRef" | "$dynamicAnchor" => {
                    "JSON Schema identifiers (`$id`, `$schema`, `$anchor`...) ignored"
                }
                _ => {
                    "JSON Schema 2020-12 constraints OpenAPI 3.0 lacks (`unevaluatedProperties`, `dependentRequired`, `propertyNames`, `contains`...) dropped"
                }
            });
        }
    }

    // A `$ref` with siblings: in 3.1 the siblings apply too; in 3.0 they would be ignored.
    if schema.contains_key("$ref")
        && schema
            .keys()
            .any(|k| !matches!(k.as_str(), "$ref" | "description" | "summary"))
    {
        let reference = schema.remove("$ref").expect("checked above");
        schema.remove("summary");
        schema.insert("allOf".into(), json!([{ "$ref": reference }]));
    } else if schema.contains_key("$ref") {
        schema.retain(|k, _| k == "$ref");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converted(schema: Value) -> (Value, Vec<String>) {
        let mut spec = json!({"openapi": "3.1.0", "components": {"schemas": {"S": schema}}});
        let notes = convert(&mut spec).into_iter().map(|Note(n)| n).collect();
        (spec["components"]["schemas"]["S"].clone(), notes)
    }

    #[test]
    fn type_arrays_with_null_become_nullable() {
        let (schema, notes) = converted(json!({"type": ["string", "null"], "format": "date-time"}));
        assert_eq!(
            schema,
            json!({"format": "date-time", "nullable": true, "type": "string"})
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_null_member_of_a_union_becomes_nullable_or_is_dropped() {
        let (schema, _) = converted(json!({"anyOf": [{"$ref": "#/components/schemas/T"}, {"type": "null"}]}));
        assert_eq!(
            schema,
            json!({"nullable": true, "allOf": [{"$ref": "#/components/schemas/T"}]})
        );
        let (schema, notes) = converted(json!({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}));
        assert_eq!(schema, json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}));
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn a_required_field_whose_union_lost_its_null_becomes_optional() {
        let (schema, _) = converted(json!({"type": "object", "required": ["a", "b"], "properties": {
            "a": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
            "b": {"type": "string"}}}));
        assert_eq!(schema["required"], json!(["b"]));
        assert_eq!(
            schema["properties"]["a"],
            json!({"anyOf": [{"type": "integer"}, {"type": "string"}]})
        );
    }

    #[test]
    fn const_exclusive_bounds_and_examples() {
        let (schema, _) = converted(json!({"const": "x"}));
        assert_eq!(schema, json!({"enum": ["x"]}));
        let (schema, _) = converted(json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}));
        assert_eq!(
            schema,
            json!({"type": "number", "exclusiveMinimum": true, "exclusiveMaximum": true, "minimum": 0, "maximum": 1})
        );
        let (schema, _) = converted(json!({"type": "integer", "examples": [3, 4]}));
        assert_eq!(schema, json!({"type": "integer", "example": 3}));
    }

    #[test]
    fn ref_siblings_are_kept_through_all_of() {
        let (schema, _) = converted(json!({"$ref": "#/components/schemas/T", "readOnly": true}));
        assert_eq!(
            schema,
            json!({"readOnly": true, "allOf": [{"$ref": "#/components/schemas/T"}]})
        );
        let (schema, _) = converted(json!({"$ref": "#/components/schemas/T", "description": "d"}));
        assert_eq!(schema, json!({"$ref": "#/components/schemas/T"}));
    }

    #[test]
    fn content_keywords_boolean_schemas_and_what_is_dropped() {
        let (schema, notes) = converted(json!({"type": "object", "properties": {
            "a": {"type": "string", "contentEncoding": "base64"},
            "b": {"type": "string", "contentMediaType": "image/png"},
            "c": true,
            "d": {"type": "array", "prefixItems": [{"type": "string"}]},
        }}));
        assert_eq!(schema["properties"]["a"], json!({"type": "string", "format": "byte"}));
        assert_eq!(schema["properties"]["b"], json!({"type": "string", "format": "binary"}));
        assert_eq!(schema["properties"]["c"], json!({}));
        assert_eq!(schema["properties"]["d"], json!({"type": "array"}));
        assert_eq!(
            notes,
            ["OpenAPI 3.1: `prefixItems` dropped: tuples are read as arrays of any JSON value (1 place(s))"]
        );
    }

    #[test]
    fn document_level_constructs() {
        let mut spec = json!({"openapi": "3.1.0", "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
            "webhooks": {"a": {}, "b": {}},
            "components": {"securitySchemes": {"m": {"type": "mutualTLS"}, "o": {"type": "oauth2", "flows": {}}}}});
        let notes: Vec<String> = convert(&mut spec).into_iter().map(|Note(n)| n).collect();
        assert_eq!(spec["openapi"], "3.0.3");
        assert_eq!(spec["paths"], json!({}));
        assert!(spec.get("webhooks").is_none());
        assert_eq!(spec["components"]["securitySchemes"].as_object().unwrap().len(), 1);
        assert_eq!(notes.len(), 3, "{notes:?}");
    }

    /// A FastAPI-style 3.1 document with every conversion generates whole.
    #[test]
    fn the_fixture_generates_every_operation_with_the_types_3_1_meant() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/openapi-3.1.json");
        let generated = crate::generate(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        assert!(generated.left_out.is_empty(), "{:?}", generated.left_out);
        assert_eq!(generated.operations, 6, "the path item in components included");
        let code = generated.code.replace(char::is_whitespace, "");
        for expected in [
            "pubeditor:::std::option::Option<User>",
            "pubowner:User",
            "pubtags:::std::option::Option<::std::vec::Vec<::std::string::String>>",
            "pubasyncfnread_note<'a>(&'aself,note_id:i64,)",
            "q:Option<&'astr>",
        ] {
            assert!(code.contains(expected), "missing {expected}");
        }
        assert!(
            generated.code.contains("pub async fn login_password"),
            "FastAPI's password flow"
        );
        assert_eq!(generated.warnings.len(), 7, "{:#?}", generated.warnings);
        assert!(
            code.contains("pubreference:::std::option::Option<NoteInReference>"),
            "required, but null reads"
        );
    }
}

//! Repairs, before progenitor sees the spec, the constructs real specs use and progenitor refuses,
//! without changing what the API means; what cannot be repaired is dropped and said.
//!
//! Each rule is a function over the raw JSON; every change is reported as a [`Note`], which the build
//! prints as a `cargo:warning`, so the user knows exactly what was changed or left out.

use serde_json::{Map, Value};

use crate::degrade::LeftOut;

/// One change the pass made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note(pub String);

pub(crate) const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Apply every rule, in order. Operations a rule must leave out go to `left_out`.
pub fn normalize(spec: &mut Value, left_out: &mut Vec<LeftOut>) -> Vec<Note> {
    let mut notes = Vec::new();
    paths_as_written_elsewhere(spec, &mut notes);
    inline_references(spec, &mut notes);
    rename_colliding_schemas(spec, &mut notes);
    drop_multipart_operations(spec, left_out);
    synthesise_operation_ids(spec, &mut notes);
    declare_path_parameters(spec, &mut notes);
    plain_parameters(spec, &mut notes);
    default_response_is_the_error(spec, &mut notes);
    one_error_type(spec, &mut notes);
    one_type_per_outcome(spec, &mut notes);
    prefer_json_request_bodies(spec, &mut notes);
    binary_bodies(spec, &mut notes);
    schemaless_bodies(spec);
    distinct_titles(spec);
    nested_names_apart_from_components(spec);
    walk_schemas(spec, &mut |schema, at| {
        boolean_default_from_string(schema, at, &mut notes);
        drop_zero_min_length(schema);
        distinct_enum_names(schema, at, &mut notes);
        enum_beside_all_of(schema);
        annotations_out_of_all_of(schema);
        checkable_pattern(schema, at, &mut notes);
    });
    notes
}

/// Paths and methods as progenitor reads them: a path without its leading `/` (which openapiv3
/// would drop without a word) gets one, and a method in capitals (`GET`) is written in lower case.
fn paths_as_written_elsewhere(spec: &mut Value, notes: &mut Vec<Note>) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let written = std::mem::take(paths);
    for (path, mut item) in written {
        if let Some(item) = item.as_object_mut() {
            let keys: Vec<String> = item.keys().cloned().collect();
            for key in keys {
                let lower = key.to_ascii_lowercase();
                if lower != key && METHODS.contains(&lower.as_str()) && !item.contains_key(&lower) {
                    let operation = item.remove(&key).expect("a key of the map");
                    item.insert(lower, operation);
                    notes.push(Note(format!(
                        "{path}: method `{key}` read as `{}`",
                        key.to_ascii_lowercase()
                    )));
                }
            }
        }
        let path = if path.starts_with('/') {
            path
        } else {
            notes.push(Note(format!("path `{path}` has no leading `/`: read as `/{path}`")));
            format!("/{path}")
        };
        paths.entry(path).or_insert(item);
    }
}

/// Every operation: (path, method, operation object).
fn operations(spec: &mut Value) -> impl Iterator<Item = (String, &'static str, &mut Map<String, Value>)> {
    spec.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .filter_map(|(path, item)| Some((path.clone(), item.as_object_mut()?)))
        .flat_map(|(path, item)| {
            item.iter_mut().filter_map(move |(method, operation)| {
                let method = METHODS.iter().find(|m| **m == method.as_str())?;
                Some((path.clone(), *method, operation.as_object_mut()?))
            })
        })
}

fn label(path: &str, method: &str) -> String {
    format!("{} {path}", method.to_uppercase())
}

/// progenitor cannot send `multipart/form-data`: an operation whose body is only that is left out.
fn drop_multipart_operations(spec: &mut Value, left_out: &mut Vec<LeftOut>) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for method in METHODS {
            let only_multipart = item
                .get(method)
                .and_then(|op| op.pointer("/requestBody/content"))
                .and_then(Value::as_object)
                .is_some_and(|content| !content.is_empty() && content.keys().all(|k| k.starts_with("multipart/")));
            if only_multipart && let Some(operation) = item.remove(method) {
                left_out.push(LeftOut::new(
                    path,
                    method,
                    &operation,
                    "its request body is multipart/form-data, which progenitor does not generate",
                ));
            }
        }
    }
}

/// `GET /v1/projects/{project_id}` without an `operationId` becomes `get_v1_projects_project_id`.
/// An `operationId` another operation already has, or has once both are Rust names (`getUser` and
/// `get_user` are both `get_user`), gets `_2`, `_3`...: progenitor refuses the first and would
/// define one method twice for the second.
fn synthesise_operation_ids(spec: &mut Value, notes: &mut Vec<Note>) {
    let rust = |id: &str| heck::ToSnakeCase::to_snake_case(id);
    let mut taken = std::collections::HashSet::new();
    for (path, method, operation) in operations(spec) {
        let given = operation
            .get("operationId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let base = match &given {
            Some(id) if taken.insert(rust(id)) => continue,
            Some(id) => id.clone(),
            None => {
                let words: Vec<String> = path
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect();
                format!("{method}_{}", words.join("_"))
            }
        };
        let mut id = base.clone();
        let mut n = 2;
        while !taken.insert(rust(&id)) {
            id = format!("{base}_{n}");
            n += 1;
        }
        notes.push(Note(match given {
            Some(given) => format!(
                "{}: operationId `{given}` is another operation's (as a Rust name): named it `{id}`",
                label(&path, method)
            ),
            None => format!("{} has no operationId: named it `{id}`", label(&path, method)),
        }));
        operation.insert("operationId".into(), Value::String(id));
    }
}

/// A typed `default` response next to a 2xx is, in practice, the error body; progenitor would count it
/// as a second success type and stop. It becomes the `4XX` and `5XX` ranges where the spec has no
/// such range (exact statuses it names keep their own bodies and are matched first).
fn default_response_is_the_error(spec: &mut Value, notes: &mut Vec<Note>) {
    for (path, method, operation) in operations(spec) {
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        let has_success = responses.keys().any(|k| k.starts_with('2'));
        let default_is_typed = responses
            .get("default")
            .and_then(|d| d.get("content"))
            .and_then(Value::as_object)
            .is_some_and(|c| !c.is_empty());
        if has_success && responses.contains_key("default") && !default_is_typed {
            // A body-less `default` beside a success says only "anything else": without it, anything
            // else is an unexpected response, the same thing. progenitor would count it a success.
            responses.remove("default");
            continue;
        }
        if !(has_success && default_is_typed) {
            continue;
        }
        let Some(default) = responses.remove("default") else {
            continue;
        };
        for range in ["4XX", "5XX"] {
            if !responses.keys().any(|k| k.eq_ignore_ascii_case(range)) {
                responses.insert(range.into(), default.clone());
            }
        }
        notes.push(Note(format!(
            "{}: its `default` response is taken as the error type for the 4XX and 5XX statuses it does not name",
            label(&path, method)
        )));
    }
}

/// Error responses that mix typed bodies and none: progenitor needs one error type. The body-less
/// ones are dropped from the spec; such a status still reaches the caller as an error, untyped.
fn one_error_type(spec: &mut Value, notes: &mut Vec<Note>) {
    for (path, method, operation) in operations(spec) {
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        let is_error = |status: &str| status.starts_with('4') || status.starts_with('5') || status == "default";
        let typed = |response: &Value| {
            response
                .get("content")
                .and_then(Value::as_object)
                .is_some_and(|c| !c.is_empty())
        };
        let errors: Vec<(String, bool)> = responses
            .iter()
            .filter(|(s, _)| is_error(s))
            .map(|(s, r)| (s.clone(), typed(r)))
            .collect();
        if !(errors.iter().any(|(_, t)| *t) && errors.iter().any(|(_, t)| !*t)) {
            continue;
        }
        let untyped: Vec<String> = errors.into_iter().filter(|(_, t)| !*t).map(|(s, _)| s).collect();
        responses.retain(|status, _| !untyped.contains(status));
        notes.push(Note(format!(
            "{}: body-less error responses {} dropped so the others' type is the error type (those statuses \
             still fail, as unexpected responses)",
            label(&path, method),
            untyped.join(", ")
        )));
    }
}

/// progenitor needs one success type and one error type per operation. Where the statuses of one
/// outcome have different bodies:
/// - typed and body-less (a `200` with a schema and a `204`): the body-less ones are dropped; such a
///   status reaches the caller as an unexpected response, with its status;
/// - several different JSON bodies (one schema for `400`, another for `5XX`): the outcome is typed as
///   any JSON value (`serde_json::Value`), which every one of them parses as;
/// - other media types among them: the first typed one is kept, the others dropped.
fn one_type_per_outcome(spec: &mut Value, notes: &mut Vec<Note>) {
    for (path, method, operation) in operations(spec) {
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        for (outcome, matches) in [
            ("success", (|s: &str| s.starts_with('2')) as fn(&str) -> bool),
            ("error", |s: &str| {
                s.starts_with('4') || s.starts_with('5') || s == "default"
            }),
        ] {
            // What a body is: its media types and their schemas (examples do not make two bodies).
            let body = |response: &Value| {
                let content = response
                    .get("content")
                    .and_then(Value::as_object)
                    .filter(|c| !c.is_empty())?;
                Some(
                    content
                        .iter()
                        .map(|(media, body)| (media.clone(), body.get("schema").cloned().unwrap_or_default()))
                        .collect::<Map<String, Value>>(),
                )
            };
            let statuses: Vec<String> = responses.keys().filter(|s| matches(s)).cloned().collect();
            let typed: Vec<(String, Map<String, Value>)> = statuses
                .iter()
                .filter_map(|s| Some((s.clone(), body(&responses[s])?)))
                .collect();
            let Some((_, first)) = typed.first() else { continue };
            let label = label(&path, method);
            if typed.len() < statuses.len() && outcome == "success" {
                let untyped: Vec<&String> = statuses
                    .iter()
                    .filter(|s| !typed.iter().any(|(t, _)| t == *s))
                    .collect();
                notes.push(Note(format!(
                    "{label}: body-less success responses {} dropped so the others' type is the success type \
                     (those statuses reach the caller as unexpected responses)",
                    untyped.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )));
                responses.retain(|status, _| !untyped.contains(&status));
            }
            if typed.iter().all(|(_, content)| content == first) {
                continue;
            }
            let names: Vec<&str> = typed.iter().map(|(s, _)| s.as_str()).collect();
            let is_json = |media: &str| media == "application/json" || media.ends_with("+json");
            let all_json = typed.iter().all(|(_, content)| content.keys().any(|m| is_json(m)));
            if all_json {
                let any_json = serde_json::json!({"application/json": {"schema": {}}});
                for (status, _) in &typed {
                    if let Some(response) = responses.get_mut(status).and_then(Value::as_object_mut) {
                        response.insert("content".into(), any_json.clone());
                    }
                }
                notes.push(Note(format!(
                    "{label}: its {outcome} responses {} have different bodies; the {outcome} type is any JSON \
                     value (`serde_json::Value`)",
                    names.join(", ")
                )));
            } else {
                let keep = typed[0].0.clone();
                let dropped: Vec<String> = typed
                    .iter()
                    .skip(1)
                    .filter(|(_, c)| c != first)
                    .map(|(s, _)| s.clone())
                    .collect();
                responses.retain(|status, _| !dropped.contains(status));
                notes.push(Note(format!(
                    "{label}: its {outcome} responses {} have different media types; {keep}'s body is the {outcome} \
                     type, and {} dropped (they reach the caller as unexpected responses)",
                    names.join(", "),
                    dropped.join(", ")
                )));
            }
        }
    }
}

/// A path template names a parameter the operation does not declare (`/users/{id}` without an `id`
/// parameter): it is declared, as a string. A declared path parameter the template does not name is
/// dropped. progenitor refuses both.
fn declare_path_parameters(spec: &mut Value, notes: &mut Vec<Note>) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let path_parameter = |p: &Value| {
        (p.get("in").and_then(Value::as_str) == Some("path"))
            .then(|| p.get("name").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned)
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        let named: Vec<String> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        let shared: Vec<String> = item
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(path_parameter)
            .collect();
        for method in METHODS {
            let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let parameters = operation
                .entry("parameters")
                .or_insert_with(|| Value::Array(Vec::new()));
            let Some(parameters) = parameters.as_array_mut() else {
                continue;
            };
            let own: Vec<String> = parameters.iter().filter_map(path_parameter).collect();
            let label = label(path, method);
            for name in &named {
                if !own.contains(name) && !shared.contains(name) {
                    parameters.push(serde_json::json!({
                        "name": name, "in": "path", "required": true, "schema": {"type": "string"}
                    }));
                    notes.push(Note(format!(
                        "{label}: path parameter `{name}` is not declared; declared as a string"
                    )));
                }
            }
            let before = parameters.len();
            parameters.retain(|p| path_parameter(p).is_none_or(|name| named.contains(&name)));
            if parameters.len() < before {
                notes.push(Note(format!(
                    "{label}: path parameters the path does not name were dropped"
                )));
            }
            if parameters.is_empty() {
                operation.remove("parameters");
            }
        }
    }
}

/// Parameters that can only be plain values: a path parameter is required and never null (a 3.1
/// spec may write it `anyOf: [integer, null]`), a header parameter is never null, and one whose
/// schema is an object or array (which cannot be written into a header as is) is sent as a string.
fn plain_parameters(spec: &mut Value, notes: &mut Vec<Note>) {
    // The component schemas that are objects or arrays, for headers that name one.
    let structured: std::collections::HashSet<String> = spec
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, schema)| is_structured(schema))
        .map(|(name, _)| format!("#/components/schemas/{name}"))
        .collect();
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        // The path item's shared parameters, then each operation's.
        for (key, value) in item.iter_mut() {
            let (label, parameters) = match key.as_str() {
                "parameters" => (path.clone(), Some(value)),
                method if METHODS.contains(&method) => (label(path, method), value.get_mut("parameters")),
                _ => continue,
            };
            for parameter in parameters.and_then(Value::as_array_mut).into_iter().flatten() {
                plain_parameter(parameter, &label, &structured, notes);
            }
        }
    }
}

/// An object or an array (directly, not through a reference).
fn is_structured(schema: &Value) -> bool {
    matches!(schema.get("type").and_then(Value::as_str), Some("object" | "array")) || schema.get("properties").is_some()
}

fn plain_parameter(
    parameter: &mut Value,
    label: &str,
    structured_components: &std::collections::HashSet<String>,
    notes: &mut Vec<Note>,
) {
    let Some(parameter) = parameter.as_object_mut() else {
        return;
    };
    let name = parameter
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let location = parameter.get("in").and_then(Value::as_str).map(str::to_owned);
    if location.as_deref() == Some("path") {
        parameter.insert("required".into(), true.into());
    }
    let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) else {
        return;
    };
    match location.as_deref() {
        Some("path") => {
            schema.remove("nullable");
        }
        Some("header") => {
            // A header is there or not: `null` has no way onto the wire.
            schema.remove("nullable");
            // Directly, or through a reference (also one wrapped in `allOf`) to such a component.
            let names_structured = |value: &Value| {
                value
                    .get("$ref")
                    .and_then(Value::as_str)
                    .is_some_and(|r| structured_components.contains(r))
            };
            let schema_value = Value::Object(schema.clone());
            let structured = is_structured(&schema_value)
                || names_structured(&schema_value)
                || ["allOf", "oneOf", "anyOf"].iter().any(|k| {
                    schema
                        .get(*k)
                        .and_then(Value::as_array)
                        .is_some_and(|members| members.iter().any(|m| is_structured(m) || names_structured(m)))
                });
            if structured {
                *schema = Map::from_iter([("type".to_owned(), Value::from("string"))]);
                notes.push(Note(format!(
                    "{label}: header parameter `{name}` is not a plain value; sent as a string"
                )));
            }
        }
        _ => {}
    }
}

/// A JSON body with no `schema` (progenitor stops on it) is any JSON value, which is what it says.
fn schemaless_bodies(spec: &mut Value) {
    for (_, _, operation) in operations(spec) {
        for (key, value) in operation.iter_mut() {
            let contents: Vec<&mut Value> = match key.as_str() {
                "requestBody" => value.get_mut("content").into_iter().collect(),
                "responses" => value
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|r| r.values_mut())
                    .filter_map(|r| r.get_mut("content"))
                    .collect(),
                _ => continue,
            };
            for content in contents {
                for (media, body) in content.as_object_mut().into_iter().flatten() {
                    if (media == "application/json" || media.ends_with("+json"))
                        && let Some(body) = body.as_object_mut()
                    {
                        body.entry("schema").or_insert_with(|| Value::Object(Map::new()));
                    }
                }
            }
        }
    }
}

/// A `type: string, format: byte` body (base64 text) under a media type that is not JSON or text is,
/// in every spec seen, raw bytes: it becomes `format: binary`, which progenitor sends and reads as
/// bytes.
fn binary_bodies(spec: &mut Value, notes: &mut Vec<Note>) {
    for (path, method, operation) in operations(spec) {
        let mut contents: Vec<&mut Value> = Vec::new();
        for (key, value) in operation.iter_mut() {
            match key.as_str() {
                "requestBody" => contents.extend(value.get_mut("content")),
                "responses" => contents.extend(
                    value
                        .as_object_mut()
                        .into_iter()
                        .flat_map(|r| r.values_mut())
                        .filter_map(|r| r.get_mut("content")),
                ),
                _ => {}
            }
        }
        let mut changed = false;
        for content in contents {
            for (media, body) in content.as_object_mut().into_iter().flatten() {
                let textual = media.contains("json") || media.starts_with("text/");
                let Some(schema) = body.get_mut("schema").and_then(Value::as_object_mut) else {
                    continue;
                };
                if !textual
                    && schema.get("type").and_then(Value::as_str) == Some("string")
                    && schema.get("format").and_then(Value::as_str) == Some("byte")
                {
                    schema.insert("format".into(), "binary".into());
                    changed = true;
                }
            }
        }
        if changed {
            notes.push(Note(format!(
                "{}: a `format: byte` body under a binary media type is read and sent as raw bytes",
                label(&path, method)
            )));
        }
    }
}

/// Names that become the same Rust type name (`foo_bar` and `FooBar` are both `FooBar`): the later
/// ones get a number, and every `$ref` to them follows.
fn rename_colliding_schemas(spec: &mut Value, notes: &mut Vec<Note>) {
    let Some(schemas) = spec.pointer("/components/schemas").and_then(Value::as_object) else {
        return;
    };
    let rust_name = |name: &str| heck::ToPascalCase::to_pascal_case(name);
    let mut taken = std::collections::HashSet::new();
    let mut renames = Vec::new();
    for name in schemas.keys() {
        if taken.insert(rust_name(name)) {
            continue;
        }
        let mut n = 2;
        let renamed = loop {
            let candidate = format!("{name}{n}");
            if !schemas.contains_key(&candidate) && !taken.contains(&rust_name(&candidate)) {
                break candidate;
            }
            n += 1;
        };
        taken.insert(rust_name(&renamed));
        renames.push((name.clone(), renamed));
    }
    if renames.is_empty() {
        return;
    }
    if let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (old, new) in &renames {
            if let Some(schema) = schemas.remove(old) {
                schemas.insert(new.clone(), schema);
            }
        }
    }
    for_each_reference(spec, &mut |reference| {
        for (old, new) in &renames {
            let from = format!("#/components/schemas/{old}");
            if *reference == from || reference.starts_with(&format!("{from}/")) {
                *reference = format!("#/components/schemas/{new}{}", &reference[from.len()..]);
            }
        }
    });
    for (old, new) in renames {
        notes.push(Note(format!(
            "schema `{old}` renamed `{new}`: its Rust name collided with another schema's"
        )));
    }
}

/// `$ref`s progenitor does not follow. One that points inside a component schema
/// (`#/components/schemas/Outer/properties/inner`) gets its target made a component of its own
/// (`OuterInner`), which it then names: a copy in place would grow without end where the target
/// refers back to itself (a tree's node). The others are replaced by a copy of their target:
/// references to whole responses, request bodies, parameters, headers, path items and callbacks
/// (silently: nothing changes) and to other places in the document (said). A reference to another
/// file, or one whose target refers to itself, is left alone (the operation holding it is left out
/// later, with the reason).
fn inline_references(spec: &mut Value, notes: &mut Vec<Note>) {
    promote_deep_schema_references(spec, notes);
    copy_references(spec, notes);
    // Every use of them is a copy now; an invalid one unused (or one left out with its operation)
    // must not make the document unreadable.
    if let Some(components) = spec.get_mut("components").and_then(Value::as_object_mut) {
        components.retain(|kind, _| matches!(kind.as_str(), "schemas" | "securitySchemes"));
    }
}

fn copy_references(spec: &mut Value, notes: &mut Vec<Note>) {
    let kept = |reference: &str| {
        reference
            .strip_prefix("#/components/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(kind, name)| matches!(kind, "schemas" | "securitySchemes") && !name.contains('/'))
    };
    let whole_component = |reference: &str| {
        reference
            .strip_prefix("#/components/")
            .is_some_and(|rest| rest.split('/').count() == 2)
    };
    // Repeat: an inlined copy may itself hold references (bounded, in case of cycles).
    for _ in 0..8 {
        let snapshot = spec.clone();
        let mut inlined = Vec::new();
        replace_references(spec, &mut |reference| {
            if kept(reference) || !reference.starts_with('#') {
                return None;
            }
            let target = snapshot.pointer(reference.strip_prefix('#')?)?;
            if mentions(target, reference) {
                return None;
            }
            if !whole_component(reference) {
                inlined.push(reference.to_owned());
            }
            Some(target.clone())
        });
        if inlined.is_empty() && snapshot == *spec {
            return;
        }
        inlined.sort();
        inlined.dedup();
        for reference in inlined {
            notes.push(Note(format!(
                "`$ref: {reference}` points into another part of the document: its target was copied in place"
            )));
        }
    }
}

/// Whether `value` holds `$ref: reference`.
fn mentions(value: &Value, reference: &str) -> bool {
    match value {
        Value::Object(object) => {
            object.get("$ref").and_then(Value::as_str) == Some(reference)
                || object.values().any(|child| mentions(child, reference))
        }
        Value::Array(items) => items.iter().any(|item| mentions(item, reference)),
        _ => false,
    }
}

/// Every `#/components/schemas/A/...` reference deeper than a whole schema: its target becomes a
/// component schema, named after the path to it, and the references name that.
fn promote_deep_schema_references(spec: &mut Value, notes: &mut Vec<Note>) {
    const PREFIX: &str = "#/components/schemas/";
    let mut deep = std::collections::BTreeSet::new();
    for_each_reference(spec, &mut |reference| {
        if reference.strip_prefix(PREFIX).is_some_and(|rest| rest.contains('/')) {
            deep.insert(reference.clone());
        }
    });
    if deep.is_empty() {
        return;
    }
    let rust_name = |name: &str| heck::ToPascalCase::to_pascal_case(name);
    let mut taken: std::collections::HashSet<String> = spec
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|s| s.keys().map(|k| rust_name(k)).collect())
        .unwrap_or_default();
    let mut promoted = Vec::new();
    for reference in &deep {
        let Some(target) = spec.pointer(&reference[1..]).cloned() else {
            continue;
        };
        let words: Vec<String> = reference[PREFIX.len()..]
            .split('/')
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .filter(|segment| !matches!(segment.as_str(), "properties" | "allOf" | "anyOf" | "oneOf"))
            .map(|segment| if segment == "items" { "Item".to_owned() } else { segment })
            .filter(|segment| segment.parse::<usize>().is_err())
            .collect();
        let base = rust_name(&words.join("_"));
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&rust_name(&name)) {
            name = format!("{base}{n}");
            n += 1;
        }
        taken.insert(rust_name(&name));
        promoted.push((reference.clone(), name, target));
    }
    // The target's own place names the new component too (deepest first, so that every pointer
    // still resolves): one Rust type, not two of the same shape.
    let mut by_depth: Vec<&(String, String, Value)> = promoted.iter().collect();
    by_depth.sort_by_key(|(reference, _, _)| std::cmp::Reverse(reference.len()));
    for (reference, name, _) in by_depth {
        if let Some(slot) = spec.pointer_mut(&reference[1..]) {
            *slot = serde_json::json!({ "$ref": format!("{PREFIX}{}", name.replace('~', "~0").replace('/', "~1")) });
        }
    }
    if let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (_, name, target) in &promoted {
            schemas.insert(name.clone(), target.clone());
        }
    }
    for_each_reference(spec, &mut |reference| {
        if let Some((_, name, _)) = promoted.iter().find(|(from, _, _)| from == reference) {
            *reference = format!("{PREFIX}{}", name.replace('~', "~0").replace('/', "~1"));
        }
    });
    for (reference, name, _) in promoted {
        notes.push(Note(format!(
            "`$ref: {reference}` points inside a component: its target became component `{name}`"
        )));
    }
}

/// Every `$ref` string in the document.
fn for_each_reference(value: &mut Value, visit: &mut dyn FnMut(&mut String)) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) => visit(reference),
                    (_, child) => for_each_reference(child, visit),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| for_each_reference(item, visit)),
        _ => {}
    }
}

/// Replace each `{"$ref": ...}` object for which `with` gives a value.
fn replace_references(value: &mut Value, with: &mut dyn FnMut(&str) -> Option<Value>) {
    if let Some(reference) = value.get("$ref").and_then(Value::as_str).map(str::to_owned)
        && let Some(target) = with(&reference)
    {
        *value = target;
        return;
    }
    match value {
        Value::Object(object) => object.values_mut().for_each(|child| replace_references(child, with)),
        Value::Array(items) => items.iter_mut().for_each(|item| replace_references(item, with)),
        _ => {}
    }
}

/// Several request media types: keep JSON (progenitor takes one). Said, since the others are dropped.
fn prefer_json_request_bodies(spec: &mut Value, notes: &mut Vec<Note>) {
    for (path, method, operation) in operations(spec) {
        let content = operation.get_mut("requestBody").and_then(|b| b.get_mut("content"));
        let Some(content) = content.and_then(Value::as_object_mut) else {
            continue;
        };
        if content.len() < 2 {
            continue;
        }
        let keep = content
            .keys()
            .find(|k| *k == "application/json")
            .or_else(|| content.keys().find(|k| k.ends_with("+json") || k.ends_with("/json")))
            .or_else(|| content.keys().find(|k| !k.starts_with("multipart/")))
            .cloned();
        let Some(keep) = keep else { continue };
        let dropped: Vec<String> = content.keys().filter(|k| **k != keep).cloned().collect();
        content.retain(|k, _| *k == keep);
        notes.push(Note(format!(
            "{}: request body sent as {keep} only ({} left out)",
            label(&path, method),
            dropped.join(", ")
        )));
    }
}

/// Visit every schema in the document: component schemas, and every `schema` under paths,
/// parameters, bodies and responses, with their nested schemas.
/// Locations are JSON Pointers (RFC 6901), e.g. `/paths/~1files/get/parameters/0/schema`.
pub(crate) fn walk_schemas(spec: &mut Value, visit: &mut dyn FnMut(&mut Map<String, Value>, &str)) {
    fn pointer(at: &str, key: &str) -> String {
        format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"))
    }
    fn document(value: &mut Value, at: &str, visit: &mut dyn FnMut(&mut Map<String, Value>, &str)) {
        match value {
            Value::Object(object) => {
                for (key, child) in object.iter_mut() {
                    let here = pointer(at, key);
                    match key.as_str() {
                        "schema" => schema(child, &here, visit),
                        "schemas" if at == "/components" => {
                            for (name, each) in child.as_object_mut().into_iter().flatten() {
                                schema(each, &pointer(&here, name), visit);
                            }
                        }
                        _ => document(child, &here, visit),
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    document(item, &format!("{at}/{index}"), visit);
                }
            }
            _ => {}
        }
    }
    fn schema(value: &mut Value, at: &str, visit: &mut dyn FnMut(&mut Map<String, Value>, &str)) {
        let Value::Object(object) = value else { return };
        visit(object, at);
        for (key, child) in object.iter_mut() {
            let here = pointer(at, key);
            match (key.as_str(), child) {
                ("properties", Value::Object(properties)) => {
                    for (name, each) in properties.iter_mut() {
                        schema(each, &pointer(&here, name), visit);
                    }
                }
                ("items" | "additionalProperties" | "not", child) => schema(child, &here, visit),
                ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                    for (index, item) in items.iter_mut().enumerate() {
                        schema(item, &format!("{here}/{index}"), visit);
                    }
                }
                _ => {}
            }
        }
    }
    document(spec, "", visit);
}

/// typify names a nested schema after its `title`; a title that is also a component's name (`title:
/// "File (Base)"` beside the component `File--Base`, both `FileBase`) or another schema's title
/// defines one Rust type twice. Such titles are dropped, silently (they are names, not meaning), and
/// typify names those schemas from where they are.
fn distinct_titles(spec: &mut Value) {
    let rust_name = |name: &str| heck::ToPascalCase::to_pascal_case(name);
    let components: std::collections::HashSet<String> = spec
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|s| s.keys().map(|k| rust_name(k)).collect())
        .unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    walk_schemas(spec, &mut |schema, _| {
        let Some(title) = schema.get("title").and_then(Value::as_str) else {
            return;
        };
        let name = rust_name(title);
        if components.contains(&name) || !seen.insert(name) {
            schema.remove("title");
        }
    });
}

/// typify names a nested schema that needs a type of its own after its parent and property
/// (`Classification.$template` is `ClassificationTemplate`); where that is also a component's name,
/// one Rust type is defined twice. Such a schema gets a title typify names it after instead
/// (`ClassificationTemplateValue`), silently.
fn nested_names_apart_from_components(spec: &mut Value) {
    fn needs_type(schema: &Map<String, Value>) -> bool {
        !schema.contains_key("$ref")
            && ["enum", "properties", "oneOf", "anyOf", "allOf"]
                .iter()
                .any(|k| schema.contains_key(*k))
    }
    fn visit(schema: &mut Value, name: &str, taken: &mut std::collections::HashSet<String>) {
        let Some(schema) = schema.as_object_mut() else { return };
        // typify merges `allOf` members into one type: their properties are this type's.
        if let Some(Value::Array(members)) = schema.get_mut("allOf") {
            for member in members.iter_mut() {
                visit(member, name, taken);
            }
        }
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            return;
        };
        for (property, child) in properties.iter_mut() {
            let Some(object) = child.as_object_mut() else { continue };
            if !needs_type(object) {
                continue;
            }
            let mut nested = match object.get("title").and_then(Value::as_str) {
                Some(title) => heck::ToPascalCase::to_pascal_case(title),
                None => format!("{name}{}", heck::ToPascalCase::to_pascal_case(property.as_str())),
            };
            if taken.contains(&nested) {
                let base = nested.clone();
                let mut n = 1;
                nested = format!("{base}Value");
                while taken.contains(&nested) {
                    n += 1;
                    nested = format!("{base}Value{n}");
                }
                object.insert("title".into(), Value::String(nested.clone()));
            }
            taken.insert(nested.clone());
            visit(child, &nested, taken);
        }
    }
    let rust_name = |name: &str| heck::ToPascalCase::to_pascal_case(name);
    let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    let mut taken: std::collections::HashSet<String> = schemas.keys().map(|k| rust_name(k)).collect();
    for (name, schema) in schemas.iter_mut() {
        visit(schema, &rust_name(name), &mut taken);
    }
}

/// `type: boolean` with `default: "true"` (a string) has its default made a boolean.
fn boolean_default_from_string(schema: &mut Map<String, Value>, at: &str, notes: &mut Vec<Note>) {
    if schema.get("type").and_then(Value::as_str) != Some("boolean") {
        return;
    }
    let fixed = match schema.get("default").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
        Some(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
        _ => return,
    };
    schema.insert("default".into(), fixed);
    notes.push(Note(format!(
        "{at}: boolean default written as a string, read as a boolean"
    )));
}

/// `minLength: 0` constrains nothing and makes typify emit a comparison that is always true, which
/// fails `clippy -D warnings`.
fn drop_zero_min_length(schema: &mut Map<String, Value>) {
    if schema.get("minLength").and_then(Value::as_u64) == Some(0) {
        schema.remove("minLength");
    }
}

/// A string enum whose values become the same Rust variant name (`"in-progress"` and
/// `"in_progress"`, `"A"` and `"a"`) would not compile: it becomes a plain string, said.
fn distinct_enum_names(schema: &mut Map<String, Value>, at: &str, notes: &mut Vec<Note>) {
    let Some(values) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    let collides = values.iter().filter_map(Value::as_str).any(|value| {
        let name: String = heck::ToPascalCase::to_pascal_case(value)
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        !seen.insert(name.to_lowercase())
    });
    if collides {
        schema.remove("enum");
        notes.push(Note(format!(
            "{at}: enum values that differ only in case or punctuation would be the same Rust name; read as a \
             plain string"
        )));
    }
}

/// `enum` beside `allOf` (`{enum: ["channel"], allOf: [{$ref: ChannelTypes}]}`, a narrowing of a
/// shared enum): the `enum` alone says which values are allowed; typify stops on the pair. The
/// `allOf` is dropped, silently: no value changes meaning.
fn enum_beside_all_of(schema: &mut Map<String, Value>) {
    if schema.contains_key("enum") && schema.contains_key("allOf") {
        schema.remove("allOf");
    }
}

/// `allOf: [{$ref: X}, {description: ...}]`, the OpenAPI 3.0 way of describing a reference: the
/// members that only annotate are dropped (their description kept on the schema), so that typify
/// sees a reference rather than a new type to name. Silent: nothing a value means changes.
fn annotations_out_of_all_of(schema: &mut Map<String, Value>) {
    const ANNOTATIONS: [&str; 8] = [
        "description",
        "title",
        "example",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "externalDocs",
    ];
    let Some(Value::Array(members)) = schema.get_mut("allOf") else {
        return;
    };
    let only_annotates = |m: &Value| {
        m.as_object()
            .is_some_and(|m| !m.is_empty() && m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())))
    };
    if members.len() < 2 || !members.iter().any(|m| !only_annotates(m)) {
        return;
    }
    let mut description = None;
    members.retain(|m| {
        if only_annotates(m) {
            description = description.take().or_else(|| m.get("description").cloned());
            false
        } else {
            true
        }
    });
    if let Some(description) = description {
        schema.entry("description").or_insert(description);
    }
}

/// A `pattern` the generated code could not compile (the regex engine typify uses takes ECMAScript
/// syntax; `(?i)` and other Perl or PCRE flags are not): dropped, said, so that the value is not
/// checked rather than the operation lost.
fn checkable_pattern(schema: &mut Map<String, Value>, at: &str, notes: &mut Vec<Note>) {
    let Some(pattern) = schema.get("pattern").and_then(Value::as_str) else {
        return;
    };
    // Without the `u` flag regress reads `\A` or `\z` as letters; with it, it refuses them.
    if let Err(error) = regress::Regex::new(pattern).and_then(|_| regress::Regex::with_flags(pattern, "u")) {
        notes.push(Note(format!(
            "{at}: pattern `{pattern}` is not an ECMAScript regular expression ({error}); values are not checked against it"
        )));
        schema.remove("pattern");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notes(spec: &mut Value) -> Vec<String> {
        let mut left_out = Vec::new();
        let mut notes: Vec<String> = normalize(spec, &mut left_out).into_iter().map(|Note(n)| n).collect();
        notes.extend(left_out.iter().map(ToString::to_string));
        notes
    }

    #[test]
    fn a_typed_default_beside_a_success_becomes_the_error_ranges() {
        let mut spec = json!({"paths": {"/a": {"get": {"operationId": "a", "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "string"}}}},
            "404": {"description": "missing"},
            "default": {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}
        }}}}});
        let said = notes(&mut spec);
        let responses = &spec["paths"]["/a"]["get"]["responses"];
        assert!(responses.get("default").is_none());
        // 404 is named (and body-less, so dropped by the next rule: an unexpected response); the
        // default still covers 400, 403, 429... through 4XX.
        assert!(responses["4XX"]["content"].is_object(), "{responses}");
        assert!(responses["5XX"]["content"].is_object());
        assert!(said[0].contains("GET /a"));
    }

    #[test]
    fn body_less_errors_beside_typed_ones_are_dropped_and_said() {
        let mut spec = json!({"paths": {"/a": {"get": {"operationId": "a", "responses": {
            "200": {"description": "ok"},
            "400": {"description": "bad", "content": {"application/json": {"schema": {"type": "object"}}}},
            "404": {"description": "missing"}
        }}}}});
        let said = notes(&mut spec);
        let responses = spec["paths"]["/a"]["get"]["responses"].as_object().unwrap();
        assert_eq!(responses.keys().collect::<Vec<_>>(), ["200", "400"]);
        assert!(said[0].contains("body-less error responses 404 dropped"), "{said:?}");
    }

    #[test]
    fn colliding_schema_names_are_renamed_with_their_references() {
        let mut spec = json!({
            "components": {"schemas": {"foo_bar": {"type": "string"}, "FooBar": {"type": "integer"}}},
            "paths": {"/a": {"get": {"operationId": "a", "responses": {"200": {"description": "ok",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FooBar"}}}}}}}}
        });
        let said = notes(&mut spec);
        let schemas = spec["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("foo_bar") && schemas.contains_key("FooBar2"));
        assert_eq!(schemas["FooBar2"]["type"], "integer");
        assert_eq!(
            spec["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/FooBar2"
        );
        assert_eq!(
            said,
            ["schema `FooBar` renamed `FooBar2`: its Rust name collided with another schema's"]
        );
    }

    #[test]
    fn references_inside_components_are_inlined() {
        let mut spec = json!({
            "components": {"schemas": {"Outer": {"type": "object", "properties": {"inner": {"type": "object", "properties": {"x": {"type": "string"}}}}}}},
            "paths": {"/a": {"get": {"operationId": "a", "responses": {"200": {"description": "ok",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Outer/properties/inner"}}}}}}}}
        });
        let said = notes(&mut spec);
        let schema = &spec["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(schema, &json!({"$ref": "#/components/schemas/OuterInner"}));
        assert_eq!(
            spec["components"]["schemas"]["OuterInner"]["properties"]["x"]["type"],
            "string"
        );
        assert!(
            said[0].contains("points inside a component: its target became component `OuterInner`"),
            "{said:?}"
        );
    }

    #[test]
    fn a_reference_into_a_schema_that_refers_back_to_itself_does_not_grow() {
        let mut spec = json!({"components": {"schemas": {"Tree": {"type": "object", "properties": {
            "node": {"type": "object", "properties": {
                "left": {"$ref": "#/components/schemas/Tree/properties/node"},
                "right": {"$ref": "#/components/schemas/Tree/properties/node"}}}}}}}});
        let before = spec.to_string().len();
        notes(&mut spec);
        let node = &spec["components"]["schemas"]["TreeNode"];
        assert_eq!(
            node["properties"]["left"],
            json!({"$ref": "#/components/schemas/TreeNode"})
        );
        assert_eq!(
            spec["components"]["schemas"]["Tree"]["properties"]["node"],
            json!({"$ref": "#/components/schemas/TreeNode"})
        );
        assert!(spec.to_string().len() < 3 * before);
    }

    #[test]
    fn missing_operation_ids_are_made_from_method_and_path_without_collisions() {
        let mut spec = json!({"paths": {
            "/v1/projects/{project_id}": {"get": {"responses": {}}},
            "/v1/projects/{project-id}": {"get": {"responses": {}}}
        }});
        let said = notes(&mut spec);
        assert_eq!(
            spec["paths"]["/v1/projects/{project_id}"]["get"]["operationId"],
            "get_v1_projects_project_id"
        );
        assert_eq!(
            spec["paths"]["/v1/projects/{project-id}"]["get"]["operationId"],
            "get_v1_projects_project_id_2"
        );
        // Each named, and its path parameter (named differently in the two templates) declared.
        assert_eq!(said.len(), 4, "{said:?}");
    }

    #[test]
    fn multipart_only_operations_are_left_out_and_said() {
        let mut spec = json!({"paths": {"/upload": {
            "post": {"operationId": "upload", "requestBody": {"content": {"multipart/form-data": {"schema": {}}}}, "responses": {}},
            "get": {"operationId": "list", "responses": {}}
        }}});
        let said = notes(&mut spec);
        assert!(spec["paths"]["/upload"].get("post").is_none());
        assert!(spec["paths"]["/upload"].get("get").is_some());
        assert!(
            said[0]
                .starts_with("POST /upload (operationId `upload`) left out: its request body is multipart/form-data"),
            "{said:?}"
        );
    }

    #[test]
    fn several_media_types_keep_json() {
        let mut spec = json!({"paths": {"/a": {"post": {"operationId": "a", "responses": {}, "requestBody": {"content": {
            "application/x-www-form-urlencoded": {"schema": {}},
            "application/json": {"schema": {}},
            "multipart/form-data": {"schema": {}}
        }}}}}});
        let said = notes(&mut spec);
        let content = spec["paths"]["/a"]["post"]["requestBody"]["content"]
            .as_object()
            .unwrap();
        assert_eq!(content.keys().collect::<Vec<_>>(), ["application/json"]);
        assert!(said[0].contains("application/json only"), "{said:?}");
    }

    #[test]
    fn string_booleans_and_zero_min_lengths_are_repaired_everywhere() {
        let mut spec = json!({
            "components": {"schemas": {"Thing": {"type": "object", "properties": {
                "flag": {"type": "boolean", "default": "false"},
                "name": {"type": "string", "minLength": 0},
                "nested": {"type": "array", "items": {"type": "boolean", "default": "TRUE"}}
            }}}},
            "paths": {"/a": {"get": {"operationId": "a", "responses": {}, "parameters": [
                {"name": "verbose", "in": "query", "schema": {"type": "boolean", "default": "true"}}
            ]}}}
        });
        let said = notes(&mut spec);
        let thing = &spec["components"]["schemas"]["Thing"]["properties"];
        assert_eq!(thing["flag"]["default"], false);
        assert!(thing["name"].get("minLength").is_none());
        assert_eq!(thing["nested"]["items"]["default"], true);
        assert_eq!(spec["paths"]["/a"]["get"]["parameters"][0]["schema"]["default"], true);
        assert_eq!(said.len(), 3, "{said:?}");
    }
}

#[cfg(test)]
mod fixture {
    /// One fixture per rule (`fixtures/normalize/`): each generates, and says what it changed.
    #[test]
    fn each_rule_has_a_fixture_that_generates() {
        let expected = [
            (
                "default-beside-success",
                "its `default` response is taken as the error type",
            ),
            ("mixed-error-bodies", "body-less error responses 404 dropped"),
            ("several-media-types", "request body sent as application/json only"),
            (
                "multipart-body",
                "POST /a (operationId `upload`) left out: its request body is multipart/form-data",
            ),
            (
                "missing-operation-ids",
                "DELETE /v1/things/{id} has no operationId: named it `delete_v1_things_id`",
            ),
            ("deep-references", "points inside a component"),
            ("string-boolean-defaults", "boolean default written as a string"),
            ("colliding-schema-names", "schema `UserProfile` renamed `UserProfile2`"),
            // Inlining whole components changes nothing; the `$ref`'d default beside a success does.
            (
                "component-references",
                "GET /things/{id}: its `default` response is taken as the error type",
            ),
            (
                "several-error-bodies",
                "GET /a: its error responses 400, 401, 5XX have different bodies; the error type is any JSON value",
            ),
            (
                "typed-and-empty-success",
                "PUT /a: body-less success responses 204 dropped",
            ),
            (
                "byte-bodies",
                "GET /files/{id}: a `format: byte` body under a binary media type is read and sent as raw bytes",
            ),
            (
                "undeclared-path-parameters",
                "GET /orgs/{org}/members/{member_id}: path parameter `member_id` is not declared; declared as a string",
            ),
            (
                "colliding-enum-values",
                "/components/schemas/Job/properties/kind: enum values that differ only in case",
            ),
            // Nothing is left out: the path gets its `/`, `GET` is read, duplicate ids (also as Rust
            // names) are numbered, the unknown security alternative, the unused invalid component and
            // the body-less default go, the schema-less JSON body is any value, the self-referring
            // node becomes a component, and errors differing only in examples stay one type.
            (
                "operations-as-written",
                "GET /users: operationId `getUser` is another operation's (as a Rust name): named it `getUser_3`",
            ),
            // Titles, nested names and annotating `allOf` members are changed silently: the build of
            // this fixture (check-specs) is what shows typify no longer defines a type twice.
            ("type-names", ""),
            (
                "plain-parameters",
                "/runs/{run_id}: header parameter `x-delegation` is not a plain value; sent as a string",
            ),
            (
                "unsupported-patterns",
                "/components/schemas/Fields/properties/fields: pattern `(?i)^(all|none)$` is not an ECMAScript regular expression",
            ),
            // Dropping `minLength: 0` changes no meaning: done silently.
            ("zero-min-length", ""),
        ];
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/normalize");
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            expected.len(),
            "a fixture without an expectation"
        );
        for (name, note) in expected {
            let path = format!("{dir}/{name}.json");
            let generated = crate::generate(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
            // A repair keeps the operation: nothing is left out but what the multipart rule leaves.
            let expected_left_out = usize::from(name == "multipart-body");
            assert_eq!(
                generated.left_out.len(),
                expected_left_out,
                "{name}: {:?}",
                generated.left_out
            );
            match note {
                "" => assert!(generated.warnings.is_empty(), "{name}: {:?}", generated.warnings),
                note => assert!(
                    generated.warnings.iter().any(|w| w.contains(note)),
                    "{name}: {:?}",
                    generated.warnings
                ),
            }
        }
    }

    /// One spec with every blocker found in published specs: progenitor refuses it as written; after
    /// normalisation it generates, and each change is reported.
    #[test]
    fn real_world_blockers_generate_after_normalisation_and_every_change_is_said() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/real-world-blockers.json");
        let generated = crate::generate(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        let said = generated.warnings.join("\n");
        for expected in [
            "POST /files (operationId `uploadFile`) left out: its request body is multipart/form-data",
            "GET /accounts has no operationId: named it `get_accounts`",
            "GET /accounts: its `default` response is taken as the error type",
            "POST /payments: request body sent as application/json only",
            "/paths/~1files/get/parameters/0/schema: boolean default written as a string",
            "NewPayment/properties/instant: boolean default written as a string",
        ] {
            assert!(said.contains(expected), "missing `{expected}` in:\n{said}");
        }
        assert!(generated.code.contains("pub async fn get_accounts"));
        assert!(generated.code.contains("pub async fn list_files"));
        assert!(!generated.code.contains("pub async fn upload_file"));
        assert!(
            generated.code.contains("::oauth_sdk_runtime::Error<types::Problem>"),
            "the default became the error type"
        );
    }
}

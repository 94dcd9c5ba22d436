//! One operation never costs the others: an operation the generator cannot take is left out, with
//! what it is, where, and why, and the rest is generated.
//!
//! Two places can refuse an operation. Reading: an operation (or a path item's shared parameters)
//! that is not valid OpenAPI, for example a boolean where a list belongs, is left out before the
//! document is read as a whole; a component schema that is not a valid schema is read as any JSON
//! value. Generating: when progenitor refuses the spec, what it refuses is found by bisection (each
//! half generated on its own, with only the schemas it references): first among the component
//! schemas, each of which it refuses is read as any JSON value; then among the operations, each of
//! which it refuses is left out; and the rest is generated. The build fails only when the document
//! cannot be read at all, or when progenitor refuses what is left.

use std::collections::BTreeSet;
use std::fmt;

use openapiv3::OpenAPI;
use proc_macro2::TokenStream;
use serde_json::{Map, Value};

use crate::CodegenError;
use crate::normalize::METHODS;

/// An operation left out of the generated module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// `GET /v1/things/{id}`.
    pub operation: String,
    /// Its `operationId`, if it has one.
    pub operation_id: Option<String>,
    /// Where it is in the spec, as a JSON Pointer (RFC 6901): `/paths/~1v1~1things~1{id}/get`.
    pub pointer: String,
    /// The construct that could not be generated, and why.
    pub why: String,
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.operation)?;
        if let Some(id) = &self.operation_id {
            write!(f, " (operationId `{id}`)")?;
        }
        write!(f, " left out: {} (at {})", self.why, self.pointer)
    }
}

impl LeftOut {
    /// `operation`, at `path` and `method`, left out because of `why`.
    pub(crate) fn new(path: &str, method: &str, operation: &Value, why: impl Into<String>) -> Self {
        Self {
            operation: format!("{} {path}", method.to_uppercase()),
            operation_id: operation.get("operationId").and_then(Value::as_str).map(str::to_owned),
            pointer: format!("/paths/{}/{method}", escape(path)),
            why: why.into(),
        }
    }
}

/// A JSON Pointer segment (RFC 6901).
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Read the normalised document as OpenAPI, leaving out the operations that are not valid OpenAPI
/// and reading invalid component schemas as any JSON value; only a document that still cannot be
/// read fails, naming the place.
pub fn read(
    name: &str,
    spec: &mut Value,
    left_out: &mut Vec<LeftOut>,
    notes: &mut Vec<String>,
) -> Result<(), CodegenError> {
    let schemes: BTreeSet<String> = spec
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    drop_unknown_alternatives(name, spec, &schemes, notes);
    let global_security = spec.get("security").cloned();
    if let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|path, item| match item.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                left_out.push(LeftOut {
                    operation: format!("every operation of {path}"),
                    operation_id: None,
                    pointer: format!("/paths/{}", escape(path)),
                    why: format!("the path item is `$ref: {reference}`, which is not in this document"),
                });
                false
            }
            None => true,
        });
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            // What the operations share (parameters, servers) is checked with the path item's
            // methods taken out; if it is invalid, every operation of the path goes.
            let shared: Map<String, Value> = item
                .iter()
                .filter(|(key, _)| !METHODS.contains(&key.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let shared_error = invalid::<openapiv3::PathItem>(Value::Object(shared));
            for method in METHODS {
                let Some(operation) = item.get(method) else { continue };
                let why = match &shared_error {
                    Some(error) => Some(format!("the path's shared fields are not valid OpenAPI: {error}")),
                    None => invalid::<openapiv3::Operation>(operation.clone())
                        .map(|error| format!("not a valid OpenAPI operation: {error}"))
                        .or_else(|| unknown_scheme(operation, global_security.as_ref(), &schemes)),
                };
                if let Some(why) = why
                    && let Some(operation) = item.remove(method)
                {
                    left_out.push(LeftOut::new(path, method, &operation, why));
                }
            }
        }
    }
    if let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (schema_name, schema) in schemas.iter_mut() {
            if let Some(error) = invalid::<openapiv3::ReferenceOr<openapiv3::Schema>>(schema.clone()) {
                notes.push(format!(
                    "{name}: schema `{schema_name}` is not a valid schema ({error}); read as any JSON value"
                ));
                *schema = Value::Object(Map::new());
            }
        }
    }
    serde_path_to_error::deserialize::<_, OpenAPI>(spec.clone())
        .map(drop)
        .map_err(|e| {
            CodegenError::new(
                name,
                format!("not a valid OpenAPI 3.0 document at `{}`: {}", e.path(), e.inner()),
            )
        })
}

/// Why `value` is not a `T`, with where inside it; `None` if it is one.
fn invalid<T: serde::de::DeserializeOwned>(value: Value) -> Option<String> {
    let error = serde_path_to_error::deserialize::<_, T>(value).err()?;
    Some(match error.path().to_string().as_str() {
        "." | "" => error.inner().to_string(),
        path => format!("at `{path}`: {}", error.inner()),
    })
}

/// A security requirement is a list of alternatives; one that names a scheme the document does not
/// declare (or one dropped, such as 3.1's `mutualTLS`) is removed where others remain, so that an
/// operation OAuth can call is not lost for the sake of one it cannot. Said once.
fn drop_unknown_alternatives(name: &str, spec: &mut Value, schemes: &BTreeSet<String>, notes: &mut Vec<String>) {
    let mut dropped = BTreeSet::new();
    let mut prune = |security: &mut Value| {
        let Some(alternatives) = security.as_array_mut() else {
            return;
        };
        let known = |a: &Value| {
            a.as_object()
                .is_some_and(|a| a.keys().all(|scheme| schemes.contains(scheme)))
        };
        if alternatives.iter().any(known) {
            alternatives.retain(|a| {
                let keep = known(a);
                if !keep {
                    dropped.extend(a.as_object().into_iter().flat_map(|a| a.keys().cloned()));
                }
                keep
            });
        }
    };
    if let Some(global) = spec.get_mut("security") {
        prune(global);
    }
    let paths = spec
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flatten();
    for (_, item) in paths {
        for method in METHODS {
            if let Some(security) = item.get_mut(method).and_then(|op| op.get_mut("security")) {
                prune(security);
            }
        }
    }
    dropped.retain(|scheme| !schemes.contains(scheme));
    if !dropped.is_empty() {
        let list: Vec<String> = dropped.iter().map(|s| format!("`{s}`")).collect();
        notes.push(format!(
            "{name}: security alternatives naming {}, which `components.securitySchemes` does not declare, \
             were dropped where another alternative remains",
            list.join(", ")
        ));
    }
}

/// An operation that requires a security scheme the document does not declare: which scheme.
fn unknown_scheme(operation: &Value, global: Option<&Value>, schemes: &BTreeSet<String>) -> Option<String> {
    let requirements = operation.get("security").or(global)?.as_array()?;
    let unknown = requirements
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|r| r.keys())
        .find(|scheme| !schemes.contains(*scheme))?;
    Some(format!(
        "it requires security scheme `{unknown}`, which `components.securitySchemes` does not declare"
    ))
}

/// Generate with `run`; if it refuses the spec, find what it refuses and generate the rest. First the
/// component schemas on their own: one it refuses is read as any JSON value (rather than costing
/// every operation that uses it). Then the operations: one it refuses is left out. Returns the spec
/// that was generated (for the security analysis, which must see the same operations) and the
/// tokens.
pub fn generate(
    name: &str,
    mut spec: Value,
    left_out: &mut Vec<LeftOut>,
    notes: &mut Vec<String>,
    run: &dyn Fn(&OpenAPI) -> Result<TokenStream, String>,
) -> Result<(OpenAPI, TokenStream), CodegenError> {
    let read = |value: &Value| -> Result<OpenAPI, CodegenError> {
        serde_json::from_value(value.clone())
            .map_err(|e| CodegenError::new(name, format!("internal error re-reading the spec: {e}")))
    };
    let whole = read(&spec)?;
    let first_error = match run(&whole) {
        Ok(tokens) => return Ok((whole, tokens)),
        Err(error) => error,
    };

    let names: Vec<String> = spec
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    let mut candidates = Vec::new();
    bisect_schemas(&spec, &names, run, &mut candidates);
    // A schema fails on its own, or because one it references does: blame only the first kind.
    let blamed: BTreeSet<&String> = candidates.iter().map(|(n, _)| n).collect();
    let culprits: Vec<&(String, String)> = candidates
        .iter()
        .filter(|(n, _)| {
            !closure(&spec, std::slice::from_ref(n))
                .iter()
                .any(|d| d != n && blamed.contains(d))
        })
        .collect();
    let culprits = if culprits.is_empty() {
        candidates.iter().collect()
    } else {
        culprits
    };
    if let Some(schemas) = spec.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (schema, why) in culprits {
            schemas.insert(schema.clone(), Value::Object(Map::new()));
            notes.push(format!(
                "{name}: schema `{schema}` cannot be generated ({why}); read as any JSON value"
            ));
        }
    }

    let operations = operations(&spec);
    let mut refused = Vec::new();
    let whole = read(&spec)?;
    if !candidates.is_empty()
        && let Ok(tokens) = run(&whole)
    {
        return Ok((whole, tokens));
    }
    bisect(&spec, &operations, run, &mut refused);
    if refused.is_empty() && candidates.is_empty() {
        return Err(CodegenError::new(name, first_error));
    }
    let mut rest = spec.clone();
    for (path, method, why) in &refused {
        let item = rest
            .pointer_mut(&format!("/paths/{}", escape(path)))
            .and_then(Value::as_object_mut);
        if let Some(operation) = item.and_then(|item| item.remove(*method)) {
            left_out.push(LeftOut::new(path, method, &operation, why.clone()));
        }
    }
    let rest_spec = read(&rest)?;
    match run(&rest_spec) {
        Ok(tokens) => Ok((rest_spec, tokens)),
        Err(error) => Err(CodegenError::new(
            name,
            format!(
                "{error} (with the operations it refuses on their own left out: {})",
                refused.len()
            ),
        )),
    }
}

/// The component schemas of `subset` that `run` refuses, each generated with the schemas it
/// references and no operation; with why.
fn bisect_schemas(
    spec: &Value,
    subset: &[String],
    run: &dyn Fn(&OpenAPI) -> Result<TokenStream, String>,
    refused: &mut Vec<(String, String)>,
) {
    if subset.is_empty() {
        return;
    }
    let mut part = spec.clone();
    part["paths"] = Value::Object(Map::new());
    let wanted = closure(spec, subset);
    if let Some(schemas) = part.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        schemas.retain(|name, _| wanted.contains(name));
    }
    let Ok(part) = serde_json::from_value::<OpenAPI>(part) else {
        return;
    };
    let Err(error) = run(&part) else { return };
    match subset {
        [name] => refused.push((name.clone(), error)),
        _ => {
            let (left, right) = subset.split_at(subset.len() / 2);
            bisect_schemas(spec, left, run, refused);
            bisect_schemas(spec, right, run, refused);
        }
    }
}

/// `names` and every component schema they reference, transitively.
fn closure(spec: &Value, names: &[String]) -> BTreeSet<String> {
    let schemas = spec.pointer("/components/schemas").and_then(Value::as_object);
    let mut wanted = BTreeSet::new();
    let mut queue = names.to_vec();
    while let Some(name) = queue.pop() {
        if wanted.insert(name.clone())
            && let Some(schema) = schemas.and_then(|s| s.get(&name))
        {
            queue.extend(references(schema));
        }
    }
    wanted
}

/// Every operation, as (path, method).
fn operations(spec: &Value) -> Vec<(String, &'static str)> {
    let paths = spec.get("paths").and_then(Value::as_object).into_iter().flatten();
    paths
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (path.clone(), *m))
        })
        .collect()
}

/// The operations of `subset` that `run` refuses on their own, with why: halves that generate are
/// accepted whole, so `k` refused operations of `n` cost about `2 k log2 n` runs, each on a small
/// spec.
fn bisect(
    spec: &Value,
    subset: &[(String, &'static str)],
    run: &dyn Fn(&OpenAPI) -> Result<TokenStream, String>,
    refused: &mut Vec<(String, &'static str, String)>,
) {
    if subset.is_empty() {
        return;
    }
    let Ok(part) = serde_json::from_value::<OpenAPI>(only(spec, subset)) else {
        return;
    };
    let Err(error) = run(&part) else { return };
    match subset {
        [(path, method)] => refused.push((path.clone(), method, error)),
        _ => {
            let (left, right) = subset.split_at(subset.len() / 2);
            bisect(spec, left, run, refused);
            bisect(spec, right, run, refused);
        }
    }
}

/// `spec` with only the operations of `keep`, and only the component schemas they reference.
fn only(spec: &Value, keep: &[(String, &'static str)]) -> Value {
    let mut part = spec.clone();
    if let Some(paths) = part.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for method in METHODS {
                if !keep.iter().any(|(p, m)| p == path && *m == method) {
                    item.remove(method);
                }
            }
        }
        paths.retain(|_, item| METHODS.iter().any(|m| item.get(*m).is_some()));
    }
    // The schemas reachable from what is left.
    let wanted = closure(spec, &references(part.get("paths").unwrap_or(&Value::Null)));
    if let Some(schemas) = part.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        schemas.retain(|name, _| wanted.contains(name));
    }
    part
}

/// The component schemas `value` references by name.
fn references(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                if let Some(name) = object
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    found.push(name.replace("~1", "/").replace("~0", "~"));
                }
                stack.extend(object.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_construct_costs_only_its_operation_and_each_is_named_with_why_and_where() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/left-out-operations.json");
        let generated = crate::generate(std::path::Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(generated.operations, 2, "`fine` and `public_fine`");
        let said: Vec<(String, Option<&str>, &str, &str)> = generated
            .left_out
            .iter()
            .map(|l| {
                (
                    l.operation.clone(),
                    l.operation_id.as_deref(),
                    l.pointer.as_str(),
                    l.why.as_str(),
                )
            })
            .collect();
        let expect = [
            (
                "POST /upload",
                Some("upload"),
                "/paths/~1upload/post",
                "multipart/form-data",
            ),
            (
                "every operation of /linked",
                None,
                "/paths/~1linked",
                "`$ref: ./paths.yaml#/linked`",
            ),
            (
                "GET /wrong-kind",
                Some("wrong_kind"),
                "/paths/~1wrong-kind/get",
                "at `tags`: invalid type: boolean",
            ),
            (
                "GET /api-key",
                Some("needs_api_key"),
                "/paths/~1api-key/get",
                "security scheme `api_key`",
            ),
            (
                "GET /missing",
                Some("missing_schema"),
                "/paths/~1missing/get",
                "#/components/schemas/Gone is missing",
            ),
            (
                "GET /elsewhere",
                Some("other_file"),
                "/paths/~1elsewhere/get",
                "external references are not supported",
            ),
        ];
        assert_eq!(said.len(), expect.len(), "{said:#?}");
        for ((operation, id, pointer, why), (e_operation, e_id, e_pointer, e_why)) in said.iter().zip(expect) {
            assert_eq!((operation.as_str(), *id, *pointer), (e_operation, e_id, e_pointer));
            assert!(why.contains(e_why), "{operation}: {why}");
        }
        assert_eq!(
            generated.warnings.iter().filter(|w| w.contains(" left out: ")).count(),
            expect.len(),
            "each is a warning too"
        );
    }

    #[test]
    fn the_subset_keeps_only_the_schemas_its_operations_reach() {
        let spec = serde_json::json!({"paths": {
            "/a": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}},
            "/b": {"get": {"responses": {}}}},
            "components": {"schemas": {"A": {"properties": {"b": {"$ref": "#/components/schemas/B"}}}, "B": {}, "C": {}}}});
        let part = super::only(&spec, &[("/a".to_owned(), "get")]);
        let kept: Vec<&String> = part["components"]["schemas"].as_object().unwrap().keys().collect();
        assert_eq!(kept, ["A", "B"]);
        assert!(part["paths"].get("/b").is_none());
    }
}

//! The stored form of a session is a contract with every store (and anything else that reads it): its
//! JSON Schema is checked in, and a change to it must be deliberate.

use std::time::Duration;

use oauth_sdk::{Grant, TokenSet};

use crate::support::t0;

const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/token_set.schema.json");

#[test]
fn the_stored_form_matches_the_published_schema() {
    let schema = serde_json::to_value(TokenSet::json_schema()).unwrap();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(SCHEMA_FILE, serde_json::to_string_pretty(&schema).unwrap() + "\n").unwrap();
    }
    let published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SCHEMA_FILE).unwrap()).expect("the published schema is JSON");
    assert_eq!(
        schema, published,
        "the stored form changed; if that is meant, run with UPDATE_SCHEMA=1 and think about existing stores"
    );
}

#[test]
fn a_token_set_round_trips_through_its_stored_form_and_fits_the_schema() {
    let tokens = TokenSet::new("at".into(), Grant::Password, t0())
        .with_refresh_token("rt".into())
        .with_lifetime(Duration::from_secs(3600))
        .with_scopes(vec!["tasks.read".into()]);
    let json = serde_json::to_value(&tokens).unwrap();
    assert_eq!(json["access_token"], "at");
    assert_eq!(json["issued_at"], "2023-11-14T22:13:20.000Z");
    assert_eq!(json["expires_at"], "2023-11-14T23:13:20.000Z");
    assert_eq!(json["grant"], "password");

    let schema = serde_json::to_value(TokenSet::json_schema()).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    for key in json.as_object().unwrap().keys() {
        assert!(properties.contains_key(key), "`{key}` is not in the schema");
    }
    for required in schema["required"].as_array().unwrap() {
        assert!(
            json.get(required.as_str().unwrap()).is_some(),
            "required `{required}` missing"
        );
    }

    let back: TokenSet = serde_json::from_value(json).unwrap();
    assert_eq!(back.expires_at(), tokens.expires_at());
    assert_eq!(
        back.refresh_token()
            .map(|t| secrecy::ExposeSecret::expose_secret(t).to_owned()),
        Some("rt".into())
    );
}

//! Walks every frame of `proto-fixtures/` through the decoder and compares the verdict
//! with what the fixture expects (a partial match: see proto-fixtures/README.md).

use std::path::Path;

use serde_json::Value;
use tocsin::offline::decode_one;
use tocsin::protocol::crypto::Key;
use tocsin::protocol::dc09::parse_frame;
use tocsin::receiver::decide::TimePolicy;

fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Every key of `expect` is in `actual` with an equal value; arrays match element-wise.
fn partial_match(expect: &Value, actual: &Value, path: &str, errors: &mut Vec<String>) {
    match (expect, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => partial_match(ev, av, &format!("{path}.{k}"), errors),
                    None => errors.push(format!("{path}.{k}: missing (expected {ev})")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                errors.push(format!(
                    "{path}: {} elements, expected {}: {actual}",
                    a.len(),
                    e.len()
                ));
                return;
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                partial_match(ev, av, &format!("{path}[{i}]"), errors);
            }
        }
        _ if expect == actual => {}
        _ => errors.push(format!("{path}: got {actual}, expected {expect}")),
    }
}

#[test]
fn every_fixture_decodes_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto-fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("proto-fixtures directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut count = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let doc: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let fixtures = doc
            .get("fixture")
            .and_then(|f| f.as_array())
            .cloned()
            .unwrap_or_default();
        for fx in fixtures {
            count += 1;
            let name = fx
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("?")
                .to_string();
            let raw: Vec<u8> = match (fx.get("frame"), fx.get("frame_hex")) {
                (Some(f), _) => f.as_str().unwrap().as_bytes().to_vec(),
                (_, Some(h)) => hex::decode(h.as_str().unwrap().replace(' ', "")).unwrap(),
                _ => panic!("{name}: no frame"),
            };
            let key = match (fx.get("key_hex"), fx.get("key_ascii")) {
                (Some(k), _) => Some(Key::from_hex(k.as_str().unwrap()).unwrap()),
                (_, Some(k)) => Some(Key::from_ascii(k.as_str().unwrap()).unwrap()),
                _ => None,
            };
            let now = fx
                .get("now")
                .and_then(|n| n.as_str())
                .map(|s| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .unwrap()
                        .to_utc()
                })
                .unwrap_or_else(|| time::macros::utc_datetime!(2024-01-15 12:00:00));
            let policy = TimePolicy {
                disabled: fx
                    .get("no_time_check")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
                ..TimePolicy::default()
            };
            let actual = decode_one(&raw, key.as_ref(), now, &policy);
            let mut expect = fx.get("expect").map(to_json).unwrap_or(Value::Null);
            let mut errors = Vec::new();
            if let Value::Object(m) = &mut expect {
                if m.remove("response_null").is_some() && !actual["response"].is_null() {
                    errors.push(format!(
                        "response: expected silence, got {}",
                        actual["response"]
                    ));
                }
                if let Some(token) = m.remove("response_token") {
                    let reply = actual["response"]
                        .as_str()
                        .map(tocsin::protocol::text::unescape);
                    let got = reply.as_deref().and_then(|r| parse_frame(r).ok()).map(|f| {
                        format!(
                            "{}{}",
                            if f.header.encrypted { "*" } else { "" },
                            f.header.token
                        )
                    });
                    if got.as_deref() != token.as_str() {
                        errors.push(format!("response token: got {got:?}, expected {token}"));
                    }
                }
            }
            partial_match(&expect, &actual, "", &mut errors);
            if !errors.is_empty() {
                failures.push(format!(
                    "{} / {name}:\n    {}\n    actual: {actual}",
                    file.file_name().unwrap().to_string_lossy(),
                    errors.join("\n    ")
                ));
            }
        }
    }
    assert!(count >= 60, "only {count} fixtures found");
    assert!(
        failures.is_empty(),
        "{} of {count} fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

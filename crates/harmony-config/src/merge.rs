//! Field-by-field merging of partial configs.
//!
//! Objects are merged key by key, recursively; anything else (scalars, arrays, `null`) is
//! replaced whole by the higher-priority side. Arrays are not concatenated: a list in the
//! environment is meant to *be* the list, not to extend the stored one.

use serde_json::{Map, Value};

/// Fill `high` with whatever `low` has that `high` lacks; `high` wins on every conflict.
pub fn merge_under(high: &mut Map<String, Value>, low: &Map<String, Value>) {
    for (key, low_value) in low {
        match high.get_mut(key) {
            None => {
                high.insert(key.clone(), low_value.clone());
            }
            Some(Value::Object(high_inner)) => {
                if let Value::Object(low_inner) = low_value {
                    merge_under(high_inner, low_inner);
                }
            }
            Some(_) => {}
        }
    }
}

/// Merge layers given highest priority first.
pub fn merge_layers<'a>(
    layers: impl IntoIterator<Item = &'a Map<String, Value>>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for layer in layers {
        merge_under(&mut out, layer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn higher_priority_wins_per_field_and_nested_objects_merge_deeply() {
        let env = obj(json!({"database": {"port": 6543}, "tags": ["env"]}));
        let store = obj(json!({
            "database": {"host": "db", "port": 5432, "tls": {"verify": true}},
            "tags": ["a", "b"],
            "name": "stored",
        }));
        let prompted = obj(json!({"database": {"password": "p", "host": "ignored"}}));
        let merged = merge_layers([&env, &store, &prompted]);
        assert_eq!(
            Value::Object(merged),
            json!({
                "database": {"host": "db", "port": 6543, "password": "p", "tls": {"verify": true}},
                "tags": ["env"],
                "name": "stored",
            })
        );
    }

    #[test]
    fn scalars_and_nulls_replace_objects_whole() {
        let high = obj(json!({"a": null, "b": 1}));
        let low = obj(json!({"a": {"x": 1}, "b": {"y": 2}, "c": [1]}));
        let merged = merge_layers([&high, &low]);
        assert_eq!(Value::Object(merged), json!({"a": null, "b": 1, "c": [1]}));
    }
}

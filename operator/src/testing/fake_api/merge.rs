//! JSON merging for the fake API server: JSON merge patch (RFC 7386) and a small model of
//! server-side apply.

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes a key, anything else
/// (arrays included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Server-side apply, simplified: the applied configuration's fields are merged into the live
/// object (maps recursively, arrays and scalars replaced whole — every list is treated as
/// atomic), and fields the same field manager applied last time but no longer applies are
/// removed, as real apply does for fields a manager stops owning.
pub fn apply(live: &mut Value, applied: &Value, previous: Option<&Value>) {
    let Value::Object(applied) = applied else {
        *live = applied.clone();
        return;
    };
    if !live.is_object() {
        *live = Value::Object(Map::new());
    }
    let Value::Object(live_map) = live else {
        return;
    };
    if let Some(Value::Object(previous)) = previous {
        for key in previous.keys() {
            if !applied.contains_key(key) {
                live_map.remove(key);
            }
        }
    }
    for (key, value) in applied {
        let prev = previous.and_then(|p| p.get(key));
        match (live_map.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => apply(existing, value, prev),
            _ => {
                live_map.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The object without `metadata` and `status`: what a change of bumps `metadata.generation`.
pub fn generation_relevant(object: &Value) -> Value {
    let mut v = object.clone();
    if let Value::Object(map) = &mut v {
        map.remove("metadata");
        map.remove("status");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 4}}));
        assert_eq!(v, json!({"b": {"c": 4, "d": 3}}));
    }

    #[test]
    fn apply_drops_fields_no_longer_applied() {
        let mut v = json!({"spec": {"a": 1, "b": 2, "other": 9}});
        apply(
            &mut v,
            &json!({"spec": {"a": 5}}),
            Some(&json!({"spec": {"a": 1, "b": 2}})),
        );
        assert_eq!(v, json!({"spec": {"a": 5, "other": 9}}));
    }
}

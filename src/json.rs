//! A JSON object parsed one level deep.
//!
//! The edge parses a request body into a [`RawObject`]: its top-level keys,
//! each with its value kept as raw JSON text. Reading the model or the
//! `stream` flag is then cheap, and a same-format request is re-encoded by
//! copying the raw values, rewriting only what changes (the model), so a
//! 75 KB Claude Code body never pays for a typed round trip of every message.

use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// A JSON object whose values are kept as raw JSON text, in order.
#[derive(Debug, Clone, Default)]
pub struct RawObject {
    fields: Vec<(String, Box<RawValue>)>,
}

impl RawObject {
    /// Parses `bytes` as a JSON object; anything else is a 400.
    pub fn parse(bytes: &[u8]) -> Result<Self, GatewayError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let msg = if e.is_data() {
                "request body must be a JSON object".to_string()
            } else {
                format!("request body is not valid JSON: {e}")
            };
            GatewayError::invalid_request(msg)
        })
    }

    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Whether `key` is present (even as `null`).
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The top-level keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_str())
    }

    /// Iterates over the fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    /// Deserializes `key` into `T`; absent or `null` is `None`; a value of the
    /// wrong type is a 400 naming the field.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, GatewayError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get()).map(Some).map_err(|e| {
                GatewayError::invalid_param(key, format!("invalid value for `{key}`: {e}"))
            }),
        }
    }

    /// Inserts or replaces `key` with `value` (raw JSON text).
    pub fn set_raw(&mut self, key: &str, value: Box<RawValue>) {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.fields.push((key.to_string(), value)),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let pos = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(pos).1)
    }

    /// Writes the object as JSON, replacing the values of keys in `replace`
    /// (raw JSON text; appended when absent) and leaving out keys in `skip`.
    pub fn write_with(&self, replace: &[(&str, &str)], skip: &[&str]) -> Vec<u8> {
        let cap = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>()
            + replace
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
            + 2;
        let mut out = Vec::with_capacity(cap);
        out.push(b'{');
        let mut first = true;
        let mut push = |out: &mut Vec<u8>, k: &str, v: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            // Keys came from valid JSON or from our own constants; serde_json
            // escapes them again so the output is always valid.
            serde_json::to_writer(&mut *out, k).expect("writing to a Vec cannot fail");
            out.push(b':');
            out.extend_from_slice(v.as_bytes());
        };
        for (k, v) in &self.fields {
            if skip.contains(&k.as_str()) {
                continue;
            }
            match replace.iter().find(|(rk, _)| rk == k) {
                Some((_, rv)) => push(&mut out, k, rv),
                None => push(&mut out, k, v.get()),
            }
        }
        for (rk, rv) in replace {
            if !self.fields.iter().any(|(k, _)| k == rk) {
                push(&mut out, rk, rv);
            }
        }
        out.push(b'}');
        out
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor;
        impl<'de> Visitor<'de> for ObjVisitor {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut fields: Vec<(String, Box<RawValue>)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    // Last one wins, as in serde_json::Value.
                    if let Some(slot) = fields.iter_mut().find(|(fk, _)| *fk == k) {
                        slot.1 = v;
                    } else {
                        fields.push((k, v));
                    }
                }
                Ok(RawObject { fields })
            }
        }
        deserializer.deserialize_map(ObjVisitor)
    }
}

/// A JSON string literal for `s` (quoted and escaped).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// Raw JSON text for `value`.
pub fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("value serializes")
}

/// Whether a raw value is a JSON string, array, object, bool or number.
pub fn kind_of(raw: &RawValue) -> JsonKind {
    match raw.get().as_bytes().first() {
        Some(b'"') => JsonKind::String,
        Some(b'[') => JsonKind::Array,
        Some(b'{') => JsonKind::Object,
        Some(b't') | Some(b'f') => JsonKind::Bool,
        Some(b'n') => JsonKind::Null,
        _ => JsonKind::Number,
    }
}

/// The JSON type of a raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `"..."`
    String,
    /// `[...]`
    Array,
    /// `{...}`
    Object,
    /// `true` / `false`
    Bool,
    /// `null`
    Null,
    /// a number
    Number,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_rewrites_one_field() {
        let obj =
            RawObject::parse(br#"{"model":"a","messages":[{"x":1}],"z":{"deep":true}}"#).unwrap();
        let out = obj.write_with(&[("model", "\"b\"")], &[]);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"b","messages":[{"x":1}],"z":{"deep":true}}"#
        );
    }

    #[test]
    fn skips_and_appends() {
        let obj = RawObject::parse(br#"{"a":1,"providerOptions":{},"b":2}"#).unwrap();
        let out = obj.write_with(&[("c", "true")], &["providerOptions"]);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"a":1,"b":2,"c":true}"#
        );
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        let e = RawObject::parse(b"[1,2]").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("JSON object"));
        let e = RawObject::parse(b"{\"a\":").unwrap_err();
        assert!(e.message().contains("not valid JSON"));
    }

    #[test]
    fn typed_field_errors_name_the_field() {
        let obj = RawObject::parse(br#"{"max_tokens":"ten"}"#).unwrap();
        let e = obj.get_as::<u64>("max_tokens").unwrap_err();
        assert_eq!(e.param(), Some("max_tokens"));
    }
}

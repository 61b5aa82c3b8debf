//! RFC 8785 (JSON Canonicalization Scheme) and the SHA-256 fingerprint of a canonical command.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The RFC 8785 serialisation of `value`.
pub fn canonical_json(value: &Value) -> String {
    // Serialising a serde_json::Value cannot fail: every key is a string and every number finite.
    serde_json_canonicalizer::to_string(value).unwrap_or_default()
}

/// Lower-case hex SHA-256 of the canonical form of `value`.
pub fn fingerprint(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(value).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let value = json!({"b": [1, {"d": true, "c": null}], "a": "x"});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":"x","b":[1,{"c":null,"d":true}]}"#
        );
    }

    #[test]
    fn rfc8785_escapes_and_sorts_by_utf16_code_units() {
        // From RFC 8785 section 3.2.3: keys sort by UTF-16 code units, not by UTF-8 bytes.
        let value = json!({"\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew", "1": "One", "\u{1f600}": "Emoji", "\u{0080}": "Control", "\u{00f6}": "Latin"});
        assert_eq!(
            canonical_json(&value),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{0080}\":\"Control\",\"\u{00f6}\":\"Latin\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji\",\"\u{fb33}\":\"Hebrew\"}"
        );
    }

    #[test]
    fn the_fingerprint_ignores_key_order_and_is_sha256_hex() {
        let a = fingerprint(&json!({"x": 1, "y": 2}));
        let b = fingerprint(&json!({"y": 2, "x": 1}));
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        // sha256 of the exact bytes {"x":1,"y":2}
        assert_eq!(a, hex::encode(Sha256::digest(br#"{"x":1,"y":2}"#)));
    }
}

//! Small validated values: once constructed they are known to be well formed.

use std::fmt;

use serde::Serialize;

/// A 24-hex-digit Atlas id, stored in lower case (Atlas's path and body patterns are lower case).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ObjectId(String);

impl ObjectId {
    pub fn parse(text: &str) -> Option<ObjectId> {
        (text.len() == 24 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| ObjectId(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Atlas cluster name: `^[a-zA-Z0-9][a-zA-Z0-9-]*$`, at most 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClusterName(String);

impl ClusterName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Option<ClusterName> {
        let mut bytes = text.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-');
        (first_ok && rest_ok && text.len() <= Self::MAX_LEN).then(|| ClusterName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A caller-chosen idempotency key: 1-128 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(text: &str) -> Option<IdempotencyKey> {
        let chars = text.chars().count();
        ((1..=Self::MAX_CHARS).contains(&chars) && !text.chars().any(char::is_control))
            .then(|| IdempotencyKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `{"minutesAgo": N}` with 0 < N < 1440: a point inside Atlas's 24-hour window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MinutesAgo(u16);

impl MinutesAgo {
    pub const MAX: u16 = 1439;

    pub fn new(minutes: u64) -> Option<MinutesAgo> {
        u16::try_from(minutes)
            .ok()
            .filter(|m| (1..=Self::MAX).contains(m))
            .map(MinutesAgo)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// A positive 32-bit count (Atlas `int32` fields with `minimum: 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PositiveInt32(i32);

impl PositiveInt32 {
    pub fn new(value: i64) -> Option<PositiveInt32> {
        i32::try_from(value)
            .ok()
            .filter(|v| *v >= 1)
            .map(PositiveInt32)
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_24_hex_digits_in_either_case_and_kept_lower_case() {
        assert_eq!(
            ObjectId::parse("5E2211C17A3E5A48F5497DE3")
                .unwrap()
                .as_str(),
            "5e2211c17a3e5a48f5497de3"
        );
        for bad in [
            "",
            "5e2211c17a3e5a48f5497de",
            "5e2211c17a3e5a48f5497de3a",
            "5e2211c17a3e5a48f5497dg3",
            " 5e2211c17a3e5a48f5497de3",
        ] {
            assert!(ObjectId::parse(bad).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn cluster_names_follow_atlas_pattern_and_length() {
        for good in ["orders", "Orders-2", "a", "0-x", &"a".repeat(64)] {
            assert!(
                ClusterName::parse(good).is_some(),
                "{good:?} must be accepted"
            );
        }
        for bad in [
            "",
            "-orders",
            "orders/x",
            "..",
            "orders%2F",
            "or ders",
            "ordérs",
            "orders_1",
            &"a".repeat(65),
        ] {
            assert!(ClusterName::parse(bad).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn idempotency_keys_are_1_to_128_characters_without_control_characters() {
        assert!(IdempotencyKey::parse("k").is_some());
        assert!(IdempotencyKey::parse(&"é".repeat(128)).is_some());
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_none());
        assert!(IdempotencyKey::parse("a\nb").is_none());
    }

    #[test]
    fn minutes_ago_is_strictly_inside_a_day() {
        assert!(MinutesAgo::new(0).is_none());
        assert_eq!(MinutesAgo::new(1).unwrap().get(), 1);
        assert_eq!(MinutesAgo::new(1439).unwrap().get(), 1439);
        assert!(MinutesAgo::new(1440).is_none());
    }

    #[test]
    fn positive_int32_bounds() {
        assert!(PositiveInt32::new(0).is_none());
        assert!(PositiveInt32::new(-1).is_none());
        assert_eq!(
            PositiveInt32::new(i64::from(i32::MAX)).unwrap().get(),
            i32::MAX
        );
        assert!(PositiveInt32::new(i64::from(i32::MAX) + 1).is_none());
    }
}

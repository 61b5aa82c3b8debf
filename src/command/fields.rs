//! Reading the fields of one JSON object while collecting every problem found.

use serde_json::{Map, Value};

use super::json::{pointer, shorten, type_name};
use super::values::{ClusterName, ObjectId, PositiveInt32};
use crate::outcome::{ErrorCode, Problem};

/// Which field names an object accepts, refuses as read-only, or refuses with a hint.
pub(crate) struct FieldRules {
    pub writable: &'static [&'static str],
    pub read_only: &'static [&'static str],
    /// Fields that belong elsewhere, with a hint saying where.
    pub elsewhere: &'static [(&'static str, &'static str)],
}

/// Problems found so far; every check adds to it and none stops at the first.
#[derive(Default, Debug)]
pub(crate) struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, code: ErrorCode, message: impl Into<String>) {
        self.0.push(Problem::new(field, code, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// More than one restore point: a `CONFLICT` at `/restore`, or at the root when the
    /// command's `restorePoint` is one of them.
    pub fn restore_point_conflict(&mut self, kinds: &[&str], run_time_point_given: bool) {
        let at = if run_time_point_given { "" } else { "/restore" };
        self.add(
            at,
            ErrorCode::Conflict,
            format!(
                "exactly one restore point is allowed, got {}",
                kinds.join(", ")
            ),
        );
    }
}

/// One JSON object and its JSON Pointer.
pub(crate) struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    pub at: String,
}

impl<'a> Fields<'a> {
    /// `value` as an object whose fields `rules` lists (any other is reported), or an
    /// `INVALID_TYPE` problem at `at`.
    pub fn of(
        value: &'a Value,
        at: &str,
        what: &str,
        rules: &FieldRules,
        problems: &mut Problems,
    ) -> Option<Fields<'a>> {
        match value {
            Value::Object(map) => {
                let fields = Fields {
                    map,
                    at: at.to_owned(),
                };
                fields.refuse_unlisted(rules, problems);
                Some(fields)
            }
            other => {
                problems.add(
                    at,
                    ErrorCode::InvalidType,
                    format!("{what} must be a JSON object, not {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn pointer(&self, name: &str) -> String {
        pointer(&self.at, name)
    }

    /// The field's value; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Refuses every field `rules` does not list as writable, with the most helpful code and hint.
    fn refuse_unlisted(&self, rules: &FieldRules, problems: &mut Problems) {
        for name in self.map.keys() {
            if rules.writable.contains(&name.as_str()) {
                continue;
            }
            let at = self.pointer(name);
            if rules.read_only.contains(&name.as_str()) {
                problems.add(
                    at,
                    ErrorCode::ReadOnlyField,
                    format!("\"{name}\" is set by Atlas and cannot be sent; remove it"),
                );
            } else if let Some((_, hint)) = rules.elsewhere.iter().find(|(field, _)| field == name)
            {
                problems.add(
                    at,
                    ErrorCode::UnknownField,
                    format!("\"{name}\" is not a field here: {hint}"),
                );
            } else {
                let shown = shorten(name, 64);
                let message = match closest(name, rules.writable) {
                    Some(known) => format!("unknown field \"{shown}\"; did you mean \"{known}\"?"),
                    None => format!(
                        "unknown field \"{shown}\"; accepted here: {}",
                        rules.writable.join(", ")
                    ),
                };
                problems.add(at, ErrorCode::UnknownField, message);
            }
        }
    }

    /// A string field; another type is `INVALID_TYPE`.
    pub fn string(&self, name: &str, problems: &mut Problems) -> Option<&'a str> {
        match self.get(name)? {
            Value::String(text) => Some(text),
            other => {
                problems.add(
                    self.pointer(name),
                    ErrorCode::InvalidType,
                    format!("\"{name}\" must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An integer field; a decimal, a string or any other type is `INVALID_TYPE`,
    /// an integer beyond 64 bits is `OUT_OF_RANGE`.
    pub fn integer(&self, name: &str, problems: &mut Problems) -> Option<i64> {
        match self.get(name)? {
            Value::Number(number) => {
                if let Some(value) = number.as_i64() {
                    Some(value)
                } else if number.is_u64() {
                    problems.add(
                        self.pointer(name),
                        ErrorCode::OutOfRange,
                        format!("\"{name}\" is far too large"),
                    );
                    None
                } else {
                    problems.add(
                        self.pointer(name),
                        ErrorCode::InvalidType,
                        format!("\"{name}\" must be a whole number, not a decimal number"),
                    );
                    None
                }
            }
            other => {
                problems.add(
                    self.pointer(name),
                    ErrorCode::InvalidType,
                    format!(
                        "\"{name}\" must be a whole number, not {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    /// A boolean field; another type (including the string "true") is `INVALID_TYPE`.
    pub fn boolean(&self, name: &str, problems: &mut Problems) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(flag) => Some(*flag),
            other => {
                problems.add(
                    self.pointer(name),
                    ErrorCode::InvalidType,
                    format!("\"{name}\" must be true or false, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A string field parsed by `parse`; a string it refuses is `INVALID_FORMAT` with `expected`.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: &str,
        problems: &mut Problems,
    ) -> Option<T> {
        let text = self.string(name, problems)?;
        let parsed = parse(text);
        if parsed.is_none() {
            problems.add(
                self.pointer(name),
                ErrorCode::InvalidFormat,
                format!(
                    "\"{name}\" must be {expected}; got \"{}\"",
                    shorten(text, 80)
                ),
            );
        }
        parsed
    }

    /// A 24-hex-digit Atlas id field.
    pub fn object_id(&self, name: &str, problems: &mut Problems) -> Option<ObjectId> {
        self.parsed(name, ObjectId::parse, "24 hexadecimal digits", problems)
    }

    /// An Atlas cluster name field.
    pub fn cluster_name(&self, name: &str, problems: &mut Problems) -> Option<ClusterName> {
        self.parsed(
            name,
            ClusterName::parse,
            "a cluster name: letters, digits and '-', starting with a letter or digit, at most 64 characters",
            problems,
        )
    }

    /// A positive 32-bit integer field (`oplogInc`); zero, negative or too large is `OUT_OF_RANGE`.
    pub fn positive_int32(&self, name: &str, problems: &mut Problems) -> Option<PositiveInt32> {
        let value = self.integer(name, problems)?;
        let positive = PositiveInt32::new(value);
        if positive.is_none() {
            problems.add(
                self.pointer(name),
                ErrorCode::OutOfRange,
                format!("{name} must be a 32-bit integer of at least 1; got {value}"),
            );
        }
        positive
    }

    /// `oplogTs` and `oplogInc` come together: the one missing is `REQUIRED`.
    pub fn require_oplog_pair(&self, problems: &mut Problems) {
        let (has_ts, has_inc) = (self.has("oplogTs"), self.has("oplogInc"));
        if has_ts && !has_inc {
            self.require("oplogInc", ": oplogTs and oplogInc go together", problems);
        }
        if has_inc && !has_ts {
            self.require("oplogTs", ": oplogTs and oplogInc go together", problems);
        }
    }

    /// A required field that is absent (or null) is `REQUIRED` at its own pointer.
    pub fn require(&self, name: &str, why: &str, problems: &mut Problems) -> bool {
        let present = self.has(name);
        if !present {
            problems.add(
                self.pointer(name),
                ErrorCode::Required,
                format!("\"{name}\" is required{why}"),
            );
        }
        present
    }
}

/// The accepted name that `name` most likely meant: same letters in another case, or at most
/// two edits away.
fn closest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    if let Some(same) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return Some(same);
    }
    if name.chars().count() > 40 {
        return None;
    }
    known
        .iter()
        .map(|k| {
            (
                edit_distance(&name.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_case_slips_and_small_typos_only() {
        let known = &["snapshotId", "checkpointId", "delivery"];
        assert_eq!(closest("snapshotID", known), Some("snapshotId"));
        assert_eq!(closest("checkPointId", known), Some("checkpointId"));
        assert_eq!(closest("delivry", known), Some("delivery"));
        assert_eq!(closest("pointInTime", known), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}

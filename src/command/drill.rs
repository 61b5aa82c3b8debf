//! `drill` (CONTRACT section 7): marks a command as a disaster-recovery drill whose evidence is
//! kept. Not part of the fingerprint.

use std::fmt;
use std::num::NonZeroU32;

use serde::Serialize;

use super::fields::{FieldRules, Fields, Problems};
use crate::outcome::ErrorCode;

/// The fields of `drill`.
const DRILL_RULES: FieldRules = FieldRules {
    writable: &["name", "rtoTargetMinutes", "rpoTargetMinutes"],
    read_only: &[],
    elsewhere: &[],
};

/// A target longer than a year is a typo, not an objective.
pub const MAX_TARGET_MINUTES: u32 = 525_600;

/// A drill's name: 1-64 characters of `A-Z a-z 0-9 . _ -` (it is a DynamoDB key and a URL
/// path segment, so nothing that needs escaping).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DrillName(String);

impl DrillName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Option<DrillName> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        (!text.is_empty() && text.len() <= Self::MAX_LEN && text.bytes().all(allowed))
            .then(|| DrillName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DrillName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid `drill`: its name and the objectives it is measured against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrillSpec {
    pub name: DrillName,
    pub rto_target_minutes: Option<NonZeroU32>,
    pub rpo_target_minutes: Option<NonZeroU32>,
}

/// Reads the command's `drill`, reporting every problem at its own pointer. `Err` when it was
/// given but is invalid.
pub(super) fn read(fields: &Fields<'_>, problems: &mut Problems) -> Result<Option<DrillSpec>, ()> {
    let Some(value) = fields.get("drill") else {
        return Ok(None);
    };
    let at = fields.pointer("drill");
    let drill = Fields::of(value, &at, "\"drill\"", &DRILL_RULES, problems).ok_or(())?;
    drill.require(
        "name",
        ": the drill's name, under which its evidence is kept",
        problems,
    );
    let name = drill.parsed(
        "name",
        DrillName::parse,
        "1 to 64 characters of A-Z a-z 0-9 . _ -",
        problems,
    );
    let rto = read_target(&drill, "rtoTargetMinutes", problems);
    let rpo = read_target(&drill, "rpoTargetMinutes", problems);
    Ok(Some(DrillSpec {
        name: name.ok_or(())?,
        rto_target_minutes: rto?,
        rpo_target_minutes: rpo?,
    }))
}

fn read_target(
    drill: &Fields<'_>,
    name: &str,
    problems: &mut Problems,
) -> Result<Option<NonZeroU32>, ()> {
    if !drill.has(name) {
        return Ok(None);
    }
    let minutes = drill.integer(name, problems).ok_or(())?;
    let valid = u32::try_from(minutes)
        .ok()
        .filter(|m| *m <= MAX_TARGET_MINUTES)
        .and_then(NonZeroU32::new);
    if valid.is_none() {
        problems.add(
            drill.pointer(name),
            ErrorCode::OutOfRange,
            format!("\"{name}\" must be a whole number of minutes from 1 to {MAX_TARGET_MINUTES}; got {minutes}"),
        );
        return Err(());
    }
    Ok(valid)
}

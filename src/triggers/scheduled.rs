//! Where a non-HTTP trigger's idempotency key comes from (CONTRACT section 4): a schedule's
//! execution id (a key inside a scheduled command is an error), an event's `idempotencyKey` or
//! id, a direct invocation's `idempotencyKey` or the command's fingerprint.

/// Where a non-HTTP trigger's key comes from.
pub(crate) enum KeyFrom<'a> {
    /// A schedule: the execution id or the rule event's id; a key in the command is an error.
    Schedule(&'a str),
    /// An event: `idempotencyKey`, else the event's id.
    Event(Option<&'a str>),
    /// A direct invocation: `idempotencyKey`, else `sha256:` + the fingerprint.
    Direct,
}

//! The sample request of the tests that run against a [`Stack`](super::stack::Stack): the
//! command (its ids and people are the stack's, so it is valid and allowed), edited with
//! [`with`], sent as a webhook signed with the stack's secret ([`signed`]), and its status
//! lookup ([`status_lookup`]).

use serde_json::{Value, json};

use super::events::{get_request, webhook};
use super::stack::{APPROVER, GROUP, REQUESTER, SIGNING_SECRET, SNAPSHOT};

/// A snapshot restore of `orders` into `orders-drill`, under `key` when given.
pub fn command(key: Option<&str>) -> Value {
    let mut command = json!({
        "groupId": GROUP,
        "clusterName": "orders",
        "restore": {"snapshotId": SNAPSHOT, "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}},
        "requestedBy": REQUESTER,
        "approvedBy": APPROVER,
        "reason": "INC-4211 drop of orders.items"
    });
    if let Some(key) = key {
        command["idempotencyKey"] = json!(key);
    }
    command
}

/// `value` with the value at `pointer` replaced by `new`; panics where there is none.
pub fn with(mut value: Value, pointer: &str, new: Value) -> Value {
    *value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}")) = new;
    value
}

/// `command` as the webhook's body, signed now with the stack's secret.
pub fn signed(command: &Value) -> Value {
    webhook(&command.to_string(), Some(SIGNING_SECRET))
}

/// The status lookup of CONTRACT section 6, signed as it says.
pub fn status_lookup(request_id: &str) -> Value {
    let path = format!("/restore/{request_id}");
    get_request(&path, &format!("GET {path}"), Some(SIGNING_SECRET))
}

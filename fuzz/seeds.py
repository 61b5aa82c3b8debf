#!/usr/bin/env python3
"""Writes the seed corpus of the `event` and `command` fuzz targets (fuzz/seeds/<target>/) from
the samples in events/ and the bad-input catalogue tests/bad_input/cases.json, with the
catalogue's time placeholders filled in relative to the targets' pinned clock. `make fuzz`
merges these seeds with the committed minimised corpus (fuzz/corpus/<target>/).

Event inputs are one byte of mode flags, then the data (see fuzz_targets/event.rs):
0 a whole event, 1 a webhook body (signed by the target; +8 base64; +64 a status lookup of
GET /restore/<data> instead), 2 a work-queue message body, 3 a command in a Scheduler input, 4 a
command in a "Restore Requested" event; +128 queue hand-off and following on."""
import base64
import copy
import hashlib
import json
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "seeds"
NOW_MS = 1_795_885_575 * 1000  # tests/support/invariants.rs NOW_SECONDS
GROUP = "5e2211c17a3e5a48f5497de3"
SNAPSHOT = "5f1c6b1e2a9b4f3d8c7e6a5b"


def base(name, key):
    legacy_delivery = {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}
    restore = {
        "legacy": {"snapshotId": SNAPSHOT, "delivery": legacy_delivery},
        "download": {"snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP"}},
        "cloud": {"deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"},
        "cloud_pit": {"deliveryType": "pointInTime", "pointInTimeUTCSeconds": NOW_MS // 1000 - 600, "targetGroupId": GROUP, "targetClusterName": "orders-drill"},
    }[name]
    return {
        "groupId": GROUP, "clusterName": "orders", "backupType": "cloud" if name.startswith("cloud") else "legacy",
        "restore": restore, "idempotencyKey": key, "requestedBy": "U024BE7LH", "approvedBy": "U0G9QF9C6", "reason": "bad-input catalogue",
    }


def placeholder(value):
    if not isinstance(value, str):
        return value
    if value == "$now_ms":
        return NOW_MS
    if value.startswith("$now_ms+"):
        return NOW_MS + int(value[len("$now_ms+"):])
    if value.startswith("$now_ms-"):
        return NOW_MS - int(value[len("$now_ms-"):])
    if value == "$deep":
        deep = 1
        for _ in range(100):
            deep = {"a": deep}
        return deep
    return value


def edited(case, key):
    command = base(case.get("base", "legacy"), key)
    for pointer in case.get("remove", []):
        parent, name = pointer.rsplit("/", 1)
        resolve(command, parent).pop(name, None)
    for pointer, value in case.get("set", []):
        parent, name = pointer.rsplit("/", 1)
        resolve(command, parent)[name] = placeholder(value)
    return command


def resolve(value, pointer):
    for token in [t for t in pointer.split("/")[1:]]:
        value = value[token]
    return value


def dump(value):
    return json.dumps(value, separators=(",", ":")).encode()


def main():
    seeds = {"event": set(), "command": set()}
    samples = sorted((ROOT / "events").glob("*.json"))
    for path in samples:
        event = json.loads(path.read_text())
        seeds["event"].add(b"\x00" + dump(event))
        commands = [event, event.get("command"), event.get("detail")]
        if isinstance(event.get("body"), str):
            seeds["event"].add(b"\x01" + event["body"].encode())
            seeds["event"].add(b"\x81" + event["body"].encode())
            commands.append(json.loads(event["body"]))
        for record in event.get("Records", []):
            inner = json.loads(record["body"])["body"]
            seeds["event"].add(b"\x02" + inner.encode())
            commands.append(json.loads(inner))
        for command in commands:
            if isinstance(command, dict) and "groupId" in command:
                seeds["command"].add(dump(command))
                seeds["event"].add(b"\x03" + dump({k: v for k, v in command.items() if k != "idempotencyKey"}))
                seeds["event"].add(b"\x04" + dump(command))
    # Status lookups (GET, flag 64) of the known request and another; follow-up messages.
    seeds["event"].add(b"\x41approval-7f3a")
    seeds["event"].add(b"\x41approval%2D7f3a")
    seeds["event"].add(b"\x41unknown-request")
    for request_id, check in [("approval-7f3a", 1), ("approval-7f3a", 2), ("other", 1), ("", 0)]:
        message = {"followUp": {"requestId": request_id, "check": check}}
        event = {"Records": [{"messageId": "m-f", "body": dump(message).decode(), "eventSource": "aws:sqs"}]}
        seeds["event"].add(b"\x00" + dump(event))
        seeds["event"].add(b"\x80" + dump(event))
    cases = json.loads((ROOT / "tests" / "bad_input" / "cases.json").read_text())["cases"]
    for i, case in enumerate(cases):
        trigger = case["trigger"]
        if trigger == "raw":
            seeds["event"].add(b"\x00" + dump(case["event"]))
            continue
        if trigger == "webhook_raw":
            if case["body"].startswith("$"):
                continue  # the oversized and 30,000-deep bodies: covered by tests/bad_input.rs
            body = case["body"].encode()
            if case.get("base64"):
                seeds["event"].add(b"\x09" + body)
            else:
                seeds["event"].add(b"\x01" + body)
                seeds["command"].add(body)
            continue
        command = edited(case, f"bad-{i}")
        seeds["command"].add(dump(command))
        if trigger == "direct":
            seeds["event"].add(b"\x00" + dump(command))
        elif trigger == "schedule":
            seeds["event"].add(b"\x03" + dump(command))
        elif trigger == "webhook":
            seeds["event"].add(b"\x01" + dump(command))
    if OUT.exists():
        shutil.rmtree(OUT)
    for target, inputs in seeds.items():
        folder = OUT / target
        folder.mkdir(parents=True)
        for data in sorted(inputs):
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{target}: {len(inputs)} seeds in {folder.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

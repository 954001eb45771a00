"""Checks events against docs/event.schema.json with the JSON Schema 2020-12 validator of
Python's `jsonschema` (Debian `python3-jsonschema`). Run by tests/event_schema.rs.

Usage: event_schema.py SCHEMA EVENTS

EVENTS holds one JSON object a line: {"from": "<where the event came from>", "event": {...}}.
Prints one JSON object: how many events were checked, the first failures, which of the
schema's properties no event used, which optional ones every event carried, which nullable
ones were never null, and the values seen for each enumerated property. Exits 1 when an
event does not validate (or the schema itself is not valid 2020-12), else 0.
"""

import json
import sys

from jsonschema import Draft202012Validator


def main():
    schema_path, events_path = sys.argv[1], sys.argv[2]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    properties = schema.get("properties", {})
    enumerated = [name for name, p in properties.items() if "enum" in p]
    checked = 0
    failures = []
    used = set()
    absent = set()
    null = set()
    values = {name: set() for name in enumerated}
    values["code of protocol tocsin"] = set()
    with open(events_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            item = json.loads(line)
            event = item["event"]
            checked += 1
            for error in validator.iter_errors(event):
                where = "/".join(str(p) for p in error.absolute_path) or "(event)"
                failures.append(f"{item['from']}: {where}: {error.message}")
            if isinstance(event, dict):
                used.update(event)
                absent.update(set(properties) - set(event))
                null.update(k for k, v in event.items() if v is None)
                for name in enumerated:
                    if isinstance(event.get(name), str):
                        values[name].add(event[name])
                if event.get("protocol") == "tocsin":
                    values["code of protocol tocsin"].add(str(event.get("code")))
    print(
        json.dumps(
            {
                "checked": checked,
                "failure_count": len(failures),
                "failures": failures[:40],
                "unused_properties": sorted(set(properties) - used),
                "optional_always_present": sorted(
                    set(properties) - set(schema.get("required", [])) - absent
                ),
                "nullable_never_null": sorted(
                    name
                    for name, p in properties.items()
                    if "null" in p.get("type", []) and name not in null
                ),
                "values": {k: sorted(v) for k, v in values.items()},
            }
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Validates MQTT payloads against docs/schemas/*.json (JSON Schema 2020-12).

Usage: validate.py [--partial] SCHEMA_DIR SAMPLE_DIR DOC.md

SAMPLE_DIR holds what test-payload wrote:
  NAME--N.json          must be valid against SCHEMA_DIR/NAME.json
  reject--NAME--N.json  must be invalid against it
Every ```json block in DOC.md must be valid too: against the schema named by
an HTML comment "<!-- schema: NAME -->" on the line before the block, else
against the one its "schema" member names (needlelink/KIND/1 -> KIND.json).
Each payload schema must be exercised by at least one sample, unless
--partial (SAMPLE_DIR then holds payloads of some schemas only, as
tests/gateway test-mqtt collects them).

Needs Debian's python3-jsonschema; fails loudly without it.
"""
import copy
import json
import os
import re
import sys

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError as e:  # no quiet skip: the test must fail
    sys.exit("FATAL: python3-jsonschema is not installed (apt-get install "
             "python3-jsonschema): %s" % e)

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def load_schemas(d):
    schemas = {}
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                s = json.load(f)
            Draft202012Validator.check_schema(s)
            schemas[name[:-5]] = s
    return schemas


def validator(schemas, name):
    store = {s["$id"]: s for s in schemas.values()}
    s = schemas[name]
    resolver = jsonschema.RefResolver(s["$id"], s, store=store)
    return Draft202012Validator(s, resolver=resolver)


def schema_of(doc):
    m = re.fullmatch(r"needlelink/([a-z-]+)/1", str(doc.get("schema", "")))
    return m.group(1) if m else None


def main():
    args = sys.argv[1:]
    partial = bool(args) and args[0] == "--partial"
    if partial:
        args = args[1:]
    if len(args) != 3:
        sys.exit(__doc__)
    schema_dir, sample_dir, doc_path = args
    schemas = load_schemas(schema_dir)
    vals = {n: validator(schemas, n) for n in schemas}
    used = set()
    nvalid = nreject = 0

    for fn in sorted(os.listdir(sample_dir)):
        if not fn.endswith(".json"):
            continue
        m = re.fullmatch(r"(reject--)?([a-z_-]+?)--[0-9a-z_-]+\.json", fn)
        if not m or m.group(2) not in vals:
            fail("%s: no schema for this sample name" % fn)
            continue
        with open(os.path.join(sample_dir, fn)) as f:
            doc = json.load(f)
        v = vals[m.group(2)]
        errs = sorted(v.iter_errors(doc), key=str)
        if m.group(1):
            nreject += 1
            if not errs:
                fail("%s: schema %s accepted an invalid payload" % (fn, m.group(2)))
            continue
        nvalid += 1
        used.add(m.group(2))
        for e in errs:
            fail("%s: %s at %s" % (fn, e.message, list(e.absolute_path)))
        # Strictness: the schema member and unknown members are refused.
        if isinstance(doc, dict) and not errs:
            d2 = copy.deepcopy(doc)
            d2.pop("schema", None)
            if v.is_valid(d2):
                fail("%s: still valid without \"schema\"" % fn)
            d3 = copy.deepcopy(doc)
            d3["unexpected_member"] = 1
            if v.is_valid(d3):
                fail("%s: still valid with an unknown member" % fn)

    with open(doc_path) as f:
        lines = f.read().split("\n")
    nblocks = 0
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```json":
            hint = None
            if i > 0:
                m = re.match(r"\s*<!-- schema: ([a-z_-]+) -->", lines[i - 1])
                hint = m.group(1) if m else None
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            text = "\n".join(lines[i + 1:j])
            where = "%s:%d" % (os.path.basename(doc_path), i + 1)
            nblocks += 1
            try:
                doc = json.loads(text)
            except ValueError as e:
                fail("%s: example is not JSON: %s" % (where, e))
                i = j + 1
                continue
            name = hint or (schema_of(doc) if isinstance(doc, dict) else None)
            if name not in vals:
                fail("%s: example names no known schema (%r)" % (where, name))
            else:
                used.add(name)
                for e in vals[name].iter_errors(doc):
                    fail("%s: %s: %s at %s" % (where, name, e.message,
                                               list(e.absolute_path)))
            i = j + 1
            continue
        i += 1

    for name in schemas:
        if not partial and name != "common" and name not in used:
            fail("schema %s.json: no sample or example exercises it" % name)
    if nvalid == 0 or nreject == 0 or nblocks == 0:
        fail("nothing to check: %d samples, %d rejects, %d doc examples"
             % (nvalid, nreject, nblocks))
    print("validate: %d samples, %d rejects, %d doc examples, %d schemas, "
          "jsonschema from %s" % (nvalid, nreject, nblocks, len(schemas),
                                  os.path.dirname(jsonschema.__file__)))
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

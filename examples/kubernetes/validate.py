#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests offline, strictly.

Usage: validate.py FILE.yaml [FILE.yaml ...]

Built-in kinds are checked with kubernetes-validate (PyPI) in strict mode
(unknown fields are errors) against the three newest Kubernetes minor
versions the installed kubernetes-validate ships. Objects of the MCS API
(ServiceExport, ServiceImport) have no schema there: they are checked
against the openAPIV3Schema of the CRDs vendored in crds/ beside this file,
with unknown fields rejected as well. Any other kind without a schema is an
error, so nothing passes unchecked. Exits 1 when any object fails.
"""

import copy
import glob
import os
import sys

import jsonschema
import yaml
from kubernetes_validate import utils


def newest_minors(count=3):
    """The `count` newest distinct minor versions the tool ships."""
    minors = sorted({utils.major_minor(v) for v in utils.all_versions()},
                    key=lambda v: tuple(int(p) for p in v.split(".")))
    return minors[-count:]


def strict(schema):
    """The schema with unknown fields rejected wherever properties are
    listed (the API server would prune them silently)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # metadata is typed only as "object" in a CRD: the API server checks it.
    return schema


def crd_schemas(folder):
    """(apiVersion, kind) -> schema, from every CRD in `folder`."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    api_version = "%s/%s" % (spec["group"], version["name"])
                    schema = version["schema"]["openAPIV3Schema"]
                    out[(api_version, spec["names"]["kind"])] = strict(schema)
    return out


def name_of(obj):
    meta = obj.get("metadata") or {}
    return "%s %s/%s" % (obj.get("kind"), meta.get("namespace", "-"), meta.get("name"))


def check(obj, versions, crds):
    """Error messages for one object (empty: it passed)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in crds:
        errors = jsonschema.Draft7Validator(crds[key]).iter_errors(obj)
        return ["CRD schema: %s" % e.message for e in errors]
    errors = []
    for version in versions:
        try:
            utils.validate(obj, version, strict=True)
        except utils.ValidationError as e:
            errors.append("Kubernetes %s: %s: %s" % (
                version, ".".join(str(p) for p in e.path), e.message))
        except utils.SchemaNotFoundError:
            errors.append("Kubernetes %s: no schema for %s %s" % (version, key[0], key[1]))
    return errors


def main(files):
    versions = newest_minors()
    crds = crd_schemas(os.path.join(os.path.dirname(os.path.abspath(__file__)), "crds"))
    checked = failed = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            objects = [o for o in yaml.safe_load_all(f) if o]
        for obj in objects:
            checked += 1
            errors = check(obj, versions, crds)
            failed += bool(errors)
            for error in errors:
                print("FAIL %s: %s: %s" % (path, name_of(obj), error))
    print("validated %d objects strictly against Kubernetes %s and the vendored MCS CRDs: %d failed"
          % (checked, ", ".join(versions), failed))
    return 1 if failed or not checked else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))

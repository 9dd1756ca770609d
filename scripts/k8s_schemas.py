"""Extract the Kubernetes core/v1 schemas the pod template needs from the Kubernetes
OpenAPI v3 document into one self-contained structural schema for the CRDs.

CRD schemas may not use $ref, so every reference is inlined; fields a CRD rejects
(defaults that would need pruning checks, list-map keys that need defaults, patch
hints, unions) are dropped, and descriptions are cut to their first sentence (nested
types lose them) to keep the CRDs small. The Go-side enums the document does not state
(a toleration's operator and effect) are added, so the API server refuses a bad
toleration at apply time.

    python scripts/k8s_schemas.py [OPENAPI_JSON] > operator/baton_operator/k8s/podspec_schema.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

SOURCE = (
    "/var/cache/baton-e2e/go/mod/k8s.io/kubernetes@v1.34.4/api/openapi-spec/v3/api__v1_openapi.json"
)
VERSION = "v1.34.4"
P = "io.k8s.api.core.v1."
NEEDED = {
    "toleration": "Toleration",
    "envVar": "EnvVar",
    "envFromSource": "EnvFromSource",
    "volume": "Volume",
    "volumeMount": "VolumeMount",
    "resources": "ResourceRequirements",
    "affinity": "Affinity",
    "topologySpreadConstraint": "TopologySpreadConstraint",
    "localObjectReference": "LocalObjectReference",
    "securityContext": "SecurityContext",
    "podSecurityContext": "PodSecurityContext",
    "container": "Container",
}
INT_OR_STRING = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
}
DROP = {
    "default",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-patch-strategy",
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-unions",
    "x-kubernetes-map-type",
}
# Enums validated in Go, not stated in the OpenAPI document.
ENUMS = {
    ("Toleration", "operator"): ["Exists", "Equal"],
    ("Toleration", "effect"): ["", "NoSchedule", "PreferNoSchedule", "NoExecute"],
}


def _short(text: str) -> str:
    first = text.split("\n")[0].split(". ")[0].rstrip(".")
    return first[:160]


def inline(schemas: dict[str, Any], name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The definition ``name`` with every $ref inlined (a cycle becomes a free object)."""
    if name in INT_OR_STRING:
        return {"x-kubernetes-int-or-string": True}
    if name in seen:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    short = name.removeprefix(P)
    out: dict[str, Any] = _node(schemas, schemas[name], (*seen, name), short)
    return out


def _node(schemas: dict[str, Any], node: Any, seen: tuple[str, ...], owner: str) -> Any:
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return inline(schemas, node["$ref"].split("/")[-1], seen)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        target = _node(schemas, node["allOf"][0], seen, owner)
        return {**target, **_node(schemas, rest, seen, owner)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROP or (key == "format" and value == "int-or-string"):
            continue
        if key == "description":
            if len(seen) == 1:  # only the top type's own fields: keeps the CRDs small
                out[key] = _short(value)
        elif key == "properties":
            out[key] = {
                p: {**_node(schemas, v, seen, owner), **_enum(owner, p)} for p, v in value.items()
            }
        elif key in ("items", "additionalProperties"):
            out[key] = _node(schemas, value, seen, owner)
        else:
            out[key] = value
    return out


def _enum(owner: str, prop: str) -> dict[str, Any]:
    values = ENUMS.get((owner, prop))
    return {"enum": values} if values else {}


def extract(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    out: dict[str, Any] = {"source": f"kubernetes {VERSION} {SOURCE.split(VERSION + '/', 1)[1]}"}
    out["definitions"] = {key: inline(schemas, P + name) for key, name in NEEDED.items()}
    return out


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else SOURCE
    with open(path) as f:
        document = json.load(f)
    json.dump(extract(document), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

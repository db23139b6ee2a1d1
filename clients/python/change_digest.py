#!/usr/bin/env python3
"""The change digest a PoA binds: con.change_sha256 (docs/authorization.md, "The change digest").

    digest = "sha256:" + hex(SHA-256(UTF-8 of the RFC 8785 (JCS) canonical JSON of the change))

where the change is the task's canonical change, computed from its action, its target's kind and
its payload exactly as the operator computes it (capabilities/change.ts):

    scale          {"replicas": n}
    restart        {"restart": true}
    update-config  {"data": {key: value_digest(value)}, "remove": [keys, in the payload's order]};
                   a Secret's value given by reference ({"valueFrom": {"secretKeyRef": {name, key}}})
                   enters as the digest of the source Secret's value, given as value_digests[key]
    deploy         {"image": ..., "container": ... or null}, or {"manifest": <the manifest as given>}
    rollback       {"revision": n, "template_hash": <pod-template-hash or ControllerRevision hash> or null}
    patch          {"patch": [the RFC 6902 operations, parsed if the payload carries a JSON string]},
                   on a ConfigMap each "value" under /data or /binaryData (or of the whole object)
                   replaced by its digest (a string: value_digest; anything else: change_digest)

No dependencies beyond the standard library, so an agent can use it before it has a token:

    python3 clients/python/change_digest.py --action scale --kind Deployment --payload '{"replicas": 5}'

RFC 8785 for the JSON a change holds (strings, numbers, booleans, null, arrays, objects): object
keys sorted by their UTF-16 code units, strings escaped as ECMAScript's JSON.stringify does, numbers
printed as ECMAScript prints them (integers beyond 2^53 are rounded to a double first, as a
JavaScript parser would); NaN and infinities have no JSON form and are refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from typing import Any, Dict, List, Optional

DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"\Asha256:[0-9a-f]{64}\Z")

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

_UNSET = object()


class ChangeError(ValueError):
    """The payload has no canonical change (a missing field, a value without a JSON form, ...)."""


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            # Control characters, and lone surrogates (a pair is one code point here), as \\u00xx.
            out.append("\\u%04x" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(x: float) -> str:
    """ECMAScript's Number::toString for a finite double (RFC 8785 section 3.2.2.3)."""
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _number(-x)
    mantissa, _, exp = repr(x).partition("e")
    int_part, _, frac = mantissa.partition(".")
    digits = int_part + frac
    point = len(int_part) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return "%se%s%d" % (head, sign, abs(e))


def _utf16_key(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare as the code units do.
    return key.encode("utf-16-be", "surrogatepass")


def canonical_json(value: Any, _depth: int = 0) -> str:
    """RFC 8785 canonical JSON of a JSON value."""
    if _depth > 64:
        raise ChangeError("change: nested deeper than 64 levels")
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 2**53 else _number(float(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ChangeError("change: %r has no JSON form" % value)
        return _number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical_json(v, _depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise ChangeError("change: object key %r is not a string" % (k,))
        keys = sorted(value, key=_utf16_key)
        return "{" + ",".join(_string(k) + ":" + canonical_json(value[k], _depth + 1) for k in keys) + "}"
    raise ChangeError("change: a %s has no JSON form" % type(value).__name__)


def change_digest(change: Any) -> str:
    """sha256:<hex> of the canonical JSON of a change."""
    return DIGEST_PREFIX + hashlib.sha256(canonical_json(change).encode("utf-8")).hexdigest()


def value_digest(value: str) -> str:
    """sha256:<hex> of one value's UTF-8 bytes: how a ConfigMap or Secret value enters a change."""
    return DIGEST_PREFIX + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _holds_config_value(kind: str, path: Any) -> bool:
    if kind != "ConfigMap":
        return False
    if not isinstance(path, str) or path == "" or not path.startswith("/"):
        return True
    return path[1:].split("/")[0] in ("data", "binaryData")


def _secret_key_ref(value: Any) -> Optional[Dict[str, str]]:
    """The reference {"valueFrom": {"secretKeyRef": {"name", "key"}}} a data value holds, or None."""
    ref = value.get("valueFrom") if isinstance(value, dict) else None
    ref = ref.get("secretKeyRef") if isinstance(ref, dict) else None
    if isinstance(ref, dict) and isinstance(ref.get("name"), str) and isinstance(ref.get("key"), str):
        return ref
    return None


def _referenced_digest(key: str, value: Any, value_digests: Dict[str, str]) -> str:
    ref = _secret_key_ref(value)
    if ref is None:
        raise ChangeError("update-config: the value of %s is neither a string nor a secretKeyRef" % json.dumps(key))
    digest = value_digests.get(key)
    if digest is None:
        raise ChangeError(
            "update-config: the value of %s is key %s of Secret %s; its change needs that value's digest, "
            "sha256:<hex of its bytes> (--value-digest %s=sha256:...)"
            % (json.dumps(key), json.dumps(ref["key"]), json.dumps(ref["name"]), key)
        )
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ChangeError("update-config: the value digest of %s must be sha256:<64 lowercase hex digits>" % json.dumps(key))
    return digest


def _update_config(payload: Dict[str, Any], value_digests: Optional[Dict[str, str]]) -> Dict[str, Any]:
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    given = value_digests or {}
    stray = [k for k in given if k not in data or isinstance(data[k], str)]
    if stray:
        raise ChangeError(
            "update-config: value digests are for references only; the payload's data has no reference named %s"
            % ", ".join(json.dumps(k) for k in stray)
        )
    digests = {}
    for key, value in data.items():
        digests[key] = value_digest(value) if isinstance(value, str) else _referenced_digest(key, value, given)
    remove = payload.get("remove")
    return {"data": digests, "remove": list(remove) if isinstance(remove, list) else []}


def _patch(kind: str, payload: Dict[str, Any]) -> Dict[str, Any]:
    ops = payload.get("patch")
    if isinstance(ops, str):
        try:
            ops = json.loads(ops, parse_constant=_no_constant)
        except ValueError as e:
            raise ChangeError("patch: the payload's patch string is not JSON: %s" % e) from None
    if not isinstance(ops, list):
        raise ChangeError("patch: the payload's patch is not an array of operations")
    out: List[Any] = []
    for op in ops:
        if not isinstance(op, dict):
            raise ChangeError("patch: an operation is not an object")
        if "value" in op and _holds_config_value(kind, op.get("path")):
            v = op["value"]
            op = dict(op, value=value_digest(v) if isinstance(v, str) else change_digest(v))
        out.append(op)
    return {"patch": out}


def _rollback(payload: Dict[str, Any], revision: Optional[int], template_hash: Any) -> Dict[str, Any]:
    rev = revision if revision is not None else payload.get("revision")
    if isinstance(rev, bool) or not isinstance(rev, int) or rev < 1:
        raise ChangeError("rollback: the revision to restore is needed (the payload's revision, or --revision)")
    if template_hash is _UNSET:
        raise ChangeError("rollback: the template hash of the revision to restore is needed (--template-hash)")
    return {"revision": rev, "template_hash": template_hash}


def canonical_change(
    action: str,
    kind: str,
    payload: Optional[Dict[str, Any]],
    revision: Optional[int] = None,
    template_hash: Any = _UNSET,
    value_digests: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """The canonical change of a task (rollback: revision and template_hash as resolved; None for
    a history entry without a hash label; update-config: value_digests, the sha256:<hex> of each
    Secret value given by reference, by data key)."""
    p = payload or {}
    if action == "scale":
        if "replicas" not in p:
            raise ChangeError("scale: the payload has no replicas")
        return {"replicas": p["replicas"]}
    if action == "restart":
        return {"restart": True}
    if action == "update-config":
        return _update_config(p, value_digests)
    if action == "deploy":
        if "manifest" in p:
            return {"manifest": p["manifest"]}
        if "image" not in p:
            raise ChangeError("deploy: the payload has neither image nor manifest")
        return {"image": p["image"], "container": p.get("container")}
    if action == "rollback":
        return _rollback(p, revision, template_hash)
    if action == "patch":
        return _patch(kind, p)
    raise ChangeError("no canonical change for action %s" % json.dumps(action))


def task_change_digest(
    action: str,
    kind: str,
    payload: Optional[Dict[str, Any]],
    revision: Optional[int] = None,
    template_hash: Any = _UNSET,
    value_digests: Optional[Dict[str, str]] = None,
) -> str:
    """sha256:<hex> of the task's canonical change: the value of its token's con.change_sha256."""
    return change_digest(canonical_change(action, kind, payload, revision, template_hash, value_digests))


def _no_constant(name: str) -> Any:
    raise ValueError("%s has no JSON form" % name)


def parse_payload(text: str) -> Dict[str, Any]:
    """A payload given on the command line: a JSON object (NaN and Infinity refused)."""
    payload = json.loads(text, parse_constant=_no_constant)
    if not isinstance(payload, dict):
        raise ChangeError("--payload must be a JSON object")
    return payload


def template_hash_arg(value: Optional[str]) -> Any:
    """--template-hash: the hash, "none" for a history entry without one, absent: not given."""
    if value is None:
        return _UNSET
    return None if value == "none" else value


def value_digests_arg(values: Optional[List[str]]) -> Optional[Dict[str, str]]:
    """--value-digest KEY=sha256:<hex>, repeated: the digest of each Secret value given by reference."""
    if not values:
        return None
    out: Dict[str, str] = {}
    for v in values:
        key, eq, digest = v.rpartition("=")
        if not eq or not key or not _DIGEST.match(digest):
            raise ChangeError("--value-digest must be <key>=sha256:<64 lowercase hex digits of the SHA-256 of the value's bytes>")
        if key in out:
            raise ChangeError("--value-digest: key %s given twice" % json.dumps(key))
        out[key] = digest
    return out


VALUE_DIGEST_HELP = (
    "update-config of a Secret: KEY=sha256:<hex> for each data key given by reference, the SHA-256 of the "
    "source Secret's value (repeat the option for several keys)"
)


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description="Print the change digest (con.change_sha256) of a task's change.")
    p.add_argument("--action", required=True, help="scale, restart, update-config, deploy, rollback or patch")
    p.add_argument("--kind", default="", help="the target's kind (a patch of a ConfigMap digests its values)")
    p.add_argument("--payload", default="{}", help="the task's payload as a JSON object")
    p.add_argument("--revision", type=int, default=None, help="rollback: the revision it restores")
    p.add_argument("--template-hash", default=None, help='rollback: the hash of that revision ("none": it has none)')
    p.add_argument("--value-digest", action="append", default=None, metavar="KEY=sha256:HEX", help=VALUE_DIGEST_HELP)
    p.add_argument("--canonical", action="store_true", help="print the canonical JSON instead of the digest")
    args = p.parse_args(argv)
    try:
        change = canonical_change(
            args.action,
            args.kind,
            parse_payload(args.payload),
            args.revision,
            template_hash_arg(args.template_hash),
            value_digests_arg(args.value_digest),
        )
        print(canonical_json(change) if args.canonical else change_digest(change))
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Independent peer for dstoken's tests, run by peer_test.go.

Reads one JSON request on stdin and writes one JSON response on stdout. It
uses the real itsdangerous (2.x) and Python's json, and re-states Datasette's
token logic from its documented behaviour (it does not import Datasette):

  go_tokens  -> load each Go-minted token with URLSafeSerializer(secret,
                salt="token").loads and return the payload re-dumped
  mint       -> mint tokens the way Datasette's create_token does
  verify     -> Datasette's SignedTokenHandler.verify_token verdicts
  b64        -> itsdangerous.encoding.base64_decode results
  json       -> json.loads, re-dumped compactly and with indent=2
  zlib       -> zlib.compress results

Byte strings travel as hex so that any text survives the trip.
"""

import importlib.metadata
import json
import re
import sys
import zlib

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_decode

ABBREVIATIONS = {
    "view-instance": "vi",
    "permissions-debug": "pd",
    "debug-menu": "dm",
    "view-database": "vd",
    "view-database-download": "vdd",
    "execute-sql": "es",
    "execute-write-sql": "ews",
    "create-table": "ct",
    "create-view": "cv",
    "store-query": "sq",
    "view-table": "vt",
    "insert-row": "ir",
    "delete-row": "dr",
    "update-row": "ur",
    "alter-table": "at",
    "set-column-type": "sct",
    "drop-table": "dt",
    "drop-view": "dv",
    "view-query": "vq",
    "update-query": "uq",
    "delete-query": "dq",
}

LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(obj):
    """Compact json.dumps as Datasette signs it; lone surrogates (which
    cannot be encoded as UTF-8) become \\uXXXX escapes."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = LONE_SURROGATE.sub(lambda m: "\\u%04x" % ord(m.group()), text)
    return text.encode("utf-8").hex()


def serializer(secret):
    return URLSafeSerializer(secret, salt="token")


def load_go_token(secret, token):
    try:
        return {"ok": True, "payload": dumps(serializer(secret).loads(token[len("dstok_"):]))}
    except BadSignature:
        return {"ok": False, "error": "BadSignature"}
    except Exception as e:  # BadPayload
        return {"ok": False, "error": type(e).__name__}


def mint(secret, spec):
    token = {"a": spec["actor"], "t": spec["t"]}
    if spec["d"]:
        token["d"] = spec["d"]
    all_, database, resource = [], {}, {}
    for r in spec["r"] or []:
        if r[0] == "all":
            all_.append(r[1])
        elif r[0] == "database":
            database.setdefault(r[1], []).append(r[2])
        else:
            resource.setdefault(r[1], {}).setdefault(r[2], []).append(r[3])
    abbr = lambda a: ABBREVIATIONS.get(a, a)
    if all_ or database or resource:
        token["_r"] = {}
        if all_:
            token["_r"]["a"] = [abbr(a) for a in all_]
        if database:
            token["_r"]["d"] = {db: [abbr(a) for a in acts] for db, acts in database.items()}
        if resource:
            token["_r"]["r"] = {
                db: {res: [abbr(a) for a in acts] for res, acts in resources.items()}
                for db, resources in resource.items()
            }
    return "dstok_" + serializer(secret).dumps(token)


def invalid(message):
    return {"result": "invalid", "message": message}


def verify(secret, case):
    # time.time() is a float; JSON may carry a whole number as an int.
    token, now, max_ttl = case["token"], float(case["now"]), case["max_ttl"]
    if not token.startswith("dstok_"):
        return {"result": "not_ours"}
    if not case["allow"]:
        return invalid("Signed tokens are not enabled for this Datasette instance")
    try:
        decoded = serializer(secret).loads(token[len("dstok_"):])
    except BadSignature:
        return invalid("Invalid token signature")
    except Exception as e:
        return {"result": "error", "exception": type(e).__name__}
    try:
        if "t" not in decoded:
            return invalid("Invalid token: no timestamp")
        created = decoded["t"]
        if not isinstance(created, int):
            return invalid("Invalid token: invalid timestamp")
        duration = decoded.get("d")
        if duration is not None and not isinstance(duration, int):
            return invalid("Invalid token: invalid duration")
        if (duration is None and max_ttl) or (
            duration is not None and max_ttl and duration > max_ttl
        ):
            duration = max_ttl
        if duration:
            if now - created > duration:
                return invalid("Token has expired")
        actor = {"id": decoded["a"], "token": "dstok"}
        if "_r" in decoded:
            actor["_r"] = decoded["_r"]
        if duration:
            actor["token_expires"] = created + duration
        return {"result": "actor", "actor": dumps(actor)}
    except Exception as e:
        return {"result": "error", "exception": type(e).__name__}


def b64(text):
    try:
        return {"ok": True, "data": base64_decode(bytes.fromhex(text)).hex()}
    except Exception as e:
        return {"ok": False, "error": str(e)}


def load_json(data):
    try:
        value = json.loads(bytes.fromhex(data).decode("utf-8"))
        return {"ok": True, "canonical": dumps(value), "indented": json.dumps(value, indent=2)}
    except Exception as e:
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, str(e)[:200])}


def compress(data):
    return zlib.compress(bytes.fromhex(data)).hex()


def main():
    req = json.load(sys.stdin)
    secret = req["secret"]
    unhex = lambda h: bytes.fromhex(h).decode("utf-8")
    items = lambda key: req.get(key) or []  # a request may leave lists out
    out = {
        "itsdangerous": importlib.metadata.version("itsdangerous"),
        "python": sys.version.split()[0],
        "go_tokens": [load_go_token(secret, unhex(t)) for t in items("go_tokens")],
        "mint": [mint(secret, spec) for spec in items("mint")],
        "verify": [
            verify(secret, dict(case, token=unhex(case["token"]))) for case in items("verify")
        ],
        "b64": [b64(t) for t in items("b64")],
        "json": [load_json(t) for t in items("json")],
        "zlib_version": zlib.ZLIB_RUNTIME_VERSION,
        "zlib": [compress(t) for t in items("zlib")],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

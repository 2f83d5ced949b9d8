"""Schemathesis hooks for fuzzing lrrd (docs/FUZZING.md).

``before_call`` keeps every URL the server might fetch on loopback (the download guard refuses it,
so nothing leaves the machine). With ``LRRD_REAL_IDS=1`` the ``flatmap_*`` hooks mix the library's
real archive ids, tankoubons, categories, stamps and page paths into the generated path and query
parameters, so requests reach past "no such id". ``LRRD_BASE`` and ``LRRD_KEY`` name the server.
"""

import base64
import json
import os
import urllib.request
from urllib.parse import quote, unquote

import schemathesis
from hypothesis import strategies as st

LOOPBACK = "http://127.0.0.1:9/"


def _loopback(value):
    if isinstance(value, str) and value:
        return LOOPBACK + quote(value, safe="")
    return value


@schemathesis.hook
def before_call(context, case, **kwargs):
    path = case.operation.path
    if path == "/download_url":
        if isinstance(case.query, dict) and "url" in case.query:
            case.query["url"] = _loopback(case.query["url"])
        if isinstance(case.body, dict):
            if "url" in case.body:
                case.body["url"] = _loopback(case.body["url"])
        elif case.body is not None:
            case.body = {"url": LOOPBACK + "fuzz.cbz"}
    elif path == "/minion/{jobname}/queue":
        if (case.path_parameters or {}).get("jobname") == "download_url" and isinstance(case.query, dict):
            case.query["args"] = json.dumps([LOOPBACK + "fuzz.cbz"])
    elif path in ("/plugins/use", "/plugins/queue") and isinstance(case.query, dict):
        # No built-in plugin fetches anything, but a URL argument stays local all the same.
        if isinstance(case.query.get("arg"), str) and "://" in case.query["arg"]:
            case.query["arg"] = _loopback(case.query["arg"])


# ---- real ids, so generated requests reach past the "no such id" answers ----------------------

BASE = os.environ.get("LRRD_BASE", "http://127.0.0.1:3091/api")
KEY = os.environ.get("LRRD_KEY", "fuzzkey")


def _get(path):
    request = urllib.request.Request(BASE + path, headers={
        "Authorization": "Bearer " + base64.b64encode(KEY.encode()).decode()})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _put(path):
    request = urllib.request.Request(BASE + path, method="PUT", headers={
        "Authorization": "Bearer " + base64.b64encode(KEY.encode()).decode()})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


REAL = {"archive": [], "tank": [], "category": [], "stamp": [], "page": []}
if os.environ.get("LRRD_REAL_IDS"):
    REAL["archive"] = [a["arcid"] for a in _get("/archives")]
    for i in range(2):
        REAL["tank"].append(_put(f"/tankoubons?name=fuzz{i}")["tankoubon_id"])
        REAL["category"].append(_put(f"/categories?name=fuzz{i}")["category_id"])
    REAL["category"].append(_put("/categories?name=dyn&search=date_added")["category_id"])
    for arcid in REAL["archive"][:4]:
        REAL["stamp"].append(_put(f"/archives/{arcid}/stamps/1?content=s&position=1,1")["stamp_id"])
        REAL["page"] += _get(f"/archives/{arcid}/files")["pages"][:2]
    REAL["page"] = [unquote(p.split("path=", 1)[-1]) for p in REAL["page"]]


def _mixed(original, pool):
    if not pool:
        return st.just(original)
    return st.one_of(st.just(original), st.sampled_from(pool))


# DELETE /archives/{id} with a real id removes the file: left to generated ids.
_ARCHIVE_PATHS = ("/archives/{id}", "/opds/{id}")


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    if not os.environ.get("LRRD_REAL_IDS") or not path_parameters:
        return st.just(path_parameters)
    operation = context.operation
    path, method = operation.path, operation.method.upper()
    pools = {}
    if path.startswith(_ARCHIVE_PATHS) and not (path == "/archives/{id}" and method == "DELETE"):
        pools["id"] = REAL["archive"]
    elif path.startswith("/tankoubons/{id}"):
        pools["id"], pools["archive"] = REAL["tank"], REAL["archive"]
    elif path.startswith("/categories/{id}") or path.startswith("/categories/bookmark_link/{id}"):
        pools["id"], pools["archive"] = REAL["category"], REAL["archive"] + REAL["tank"]
    elif path.startswith("/stamps/{id}"):
        pools["id"] = REAL["stamp"]
    if "page" in path_parameters:
        pools["page"] = [0, 1, 2, 3, 5]
    if "index" in path_parameters:
        pools["index"] = [0, 1, 2, 3]
    if "jobid" in path_parameters:
        pools["jobid"] = list(range(1, 30))
    strategy = st.just(dict(path_parameters))
    for name, pool in pools.items():
        if name in path_parameters and pool:
            strategy = strategy.flatmap(
                lambda params, name=name, pool=pool: _mixed(params[name], pool).map(
                    lambda value, params=params, name=name: {**params, name: value}))
    return strategy


@schemathesis.hook
def flatmap_query(context, query):
    if not os.environ.get("LRRD_REAL_IDS") or not isinstance(query, dict):
        return st.just(query)
    path = context.operation.path
    if path == "/archives/{id}/page" and "path" in query and REAL["page"]:
        return _mixed(query["path"], REAL["page"]).map(lambda value: {**query, "path": value})
    if path in ("/plugins/use", "/plugins/queue") and "id" in query and REAL["archive"]:
        return _mixed(query["id"], REAL["archive"]).map(lambda value: {**query, "id": value})
    if path.startswith("/search") and "category" in query and REAL["category"]:
        return _mixed(query["category"], REAL["category"]).map(lambda value: {**query, "category": value})
    return st.just(query)

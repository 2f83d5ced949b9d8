"""One line per distinct failure (operation, check, status) in a schemathesis NDJSON report.

``triage.py REPORT.ndjson`` prints the number of requests, then for each failure its count, the
first request that showed it and the start of the response body.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any


def main(report: str) -> None:
    """Group the failed checks of every scenario in ``report``."""
    seen: dict[tuple[str, str, Any], list[tuple[str, str, str, Any]]] = {}
    total = 0
    with open(report) as lines:
        for line in lines:
            event = json.loads(line)
            if "ScenarioFinished" not in event:
                continue
            recorder = event["ScenarioFinished"]["recorder"]
            for case_id, checks in recorder.get("checks", {}).items():
                interaction = recorder.get("interactions", {}).get(case_id) or {}
                total += 1
                for check in checks:
                    if check["status"] != "failure":
                        continue
                    response = interaction.get("response") or {}
                    body = response.get("content") or {}
                    if isinstance(body, dict) and "$base64" in body:
                        body = base64.b64decode(body["$base64"])[:160]
                    content_type = (response.get("headers") or {}).get("content-type", [""])[0]
                    request = interaction.get("request") or {}
                    key = (recorder["label"], check["name"], response.get("status_code"))
                    seen.setdefault(key, []).append(
                        (request.get("method", ""), request.get("uri", "")[:200], content_type, body))
    print("requests", total)
    for (label, check, status), items in seen.items():
        method, uri, content_type, body = items[0]
        print(f"{label} | {check} | {status} | x{len(items)} | {method} {uri} | {content_type} | {body!r}")


if __name__ == "__main__":
    main(sys.argv[1])

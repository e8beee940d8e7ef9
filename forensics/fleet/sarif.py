"""`OUT/fleet.sarif`: one SARIF log with one run per archive, from each job's own SARIF
(forensics.export.sarif). Each run carries its archive (path and input sha256) in
`automationDetails` and `properties`, so an alert says which archive it came from."""

from __future__ import annotations

import json
import os

from forensics.export.sarif import SCHEMA_URI


def merge(out: str, lines: list[dict]) -> dict:
    runs = []
    for line in lines:
        rel = line.get("sarif")
        if not rel:
            continue
        try:
            with open(os.path.join(out, rel), encoding="utf-8") as fh:
                log = json.load(fh)
        except (OSError, ValueError):
            continue
        for run in log.get("runs") or []:
            run.setdefault("properties", {})["archive"] = {"path": line["path"], "sha256": line["sha256"]}
            run["automationDetails"] = {"id": f"forensics-scan-many/{line['sha256']}"}
            runs.append(run)
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": runs}


def write_merged(out: str, lines: list[dict], name: str = "fleet.sarif") -> str:
    body = json.dumps(merge(out, lines), indent=1, ensure_ascii=True) + "\n"
    path = os.path.join(out, name)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.replace(tmp, path)
    return name

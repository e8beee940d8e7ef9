"""`OUT/fleet.sarif`: one SARIF log with one run per archive, from each job's own SARIF
(forensics.export.sarif). Each run carries its archive (path and input sha256) in
`automationDetails` and `properties`, so an alert says which archive it came from. The
findings across the fleet are one more run, last, each result naming its archives; rules,
results and fingerprints are built by forensics.export.sarif as for one archive."""

from __future__ import annotations

import json
import os

from forensics.export.sarif import SCHEMA_URI, _driver, _result, _rules
from forensics.models import Finding


def fleet_run(findings: list[dict]) -> dict:
    models = [Finding.model_validate({k: v for k, v in f.items() if k != "archives"}) for f in findings]
    rules, index = _rules(models)
    results = []
    for f, model in zip(findings, models):
        result = _result(model, index, None, model.layer, (model.evidence or {}).get("diff_id"))
        result["properties"]["archives"] = f["archives"]
        results.append(result)
    driver = dict(_driver(), rules=rules)
    return {
        "tool": {"driver": driver},
        "automationDetails": {"id": "forensics-scan-many/fleet"},
        "results": results,
        "properties": {"fleet": True},
    }


def merge(out: str, lines: list[dict], findings: list[dict] | None = None) -> dict:
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
    runs.append(fleet_run(findings or []))
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": runs}


def write_merged(out: str, lines: list[dict], findings: list[dict], name: str = "fleet.sarif") -> str:
    body = json.dumps(merge(out, lines, findings), indent=1, ensure_ascii=True) + "\n"
    path = os.path.join(out, name)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.replace(tmp, path)
    return name

"""`sandbank serve --faults FILE`: rules (and presets) from a YAML or JSON file.

    rules:                       # a list of rules as POST /_sandbox/faults takes them
      - match: {operation: createCapture, attempt: {lte: 2}}
        effect: {type: status, status: 503, retry_after_s: 1}
    presets:                     # names, or {name, account, duration}
      - flaky-5xx
      - {name: total-outage, duration: 5m}

A bare list is read as `rules`. Every problem is one line naming the entry and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.faults.models import RuleIn
from simulator.faults.presets import PRESETS


class FaultFileError(ValueError):
    pass


def load(path: Path) -> tuple[dict[str, Any], ...]:
    """The file's rules as plain dicts (presets expanded), each validated."""
    try:
        doc = yaml.safe_load(path.read_text())  # JSON is YAML
    except OSError as exc:
        raise FaultFileError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise FaultFileError(
            f"{path} is not valid YAML or JSON: {str(exc).splitlines()[0]}"
        ) from None
    if doc is None:
        return ()
    if isinstance(doc, list):
        doc = {"rules": doc}
    if not isinstance(doc, dict) or set(doc) - {"rules", "presets"}:
        raise FaultFileError(f"{path}: expected a list of rules, or a mapping with rules/presets")
    rules: list[dict[str, Any]] = []
    for i, raw in enumerate(doc.get("rules") or []):
        try:
            rules.append(RuleIn.model_validate(raw).model_dump(by_alias=True, exclude_none=True))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "rule"
            raise FaultFileError(f"{path}: rules[{i}].{where}: {err['msg']}") from None
    for i, raw in enumerate(doc.get("presets") or []):
        spec = {"name": raw} if isinstance(raw, str) else raw
        if not isinstance(spec, dict) or spec.get("name") not in PRESETS:
            known = ", ".join(sorted(PRESETS))
            raise FaultFileError(f"{path}: presets[{i}]: not a preset name (known: {known})")
        try:
            built = PRESETS[spec["name"]].build(spec.get("account"), spec.get("duration"))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise FaultFileError(f"{path}: presets[{i}]: {err['msg']}") from None
        rules.extend(
            {**r.model_dump(by_alias=True, exclude_none=True), "name": spec["name"]} for r in built
        )
    return tuple(rules)

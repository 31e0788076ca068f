"""Changing the integration settings while vb2po runs (`PATCH /v1/config`, `vb2po config set`).

A change is planned on top of the current overrides, checked against the systems it touches
(the marker column in every company's live CustTr, a bank account in PowerOffice) and only
then stored; every process applies it within about a second. A dry run does all but the store.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Iterable

from admin.actions.config_check import Finding, check_client, check_company, check_settings, failed, redacted
from admin.actions.errors import Conflict, Invalid
from vb2po.integration_settings import (
    VISMA_PATHS,
    Change,
    ChangeRefused,
    client_field,
    editable_paths,
    plan_change,
    value_at,
)
from vb2po.live_settings import LiveSettings

Verify = Callable[[Change], list[Finding]]


def verify_against_systems(change: Change) -> list[Finding]:
    """The checks of `vb2po config check` that the changed fields need, on the new settings."""
    settings = change.settings
    paths = {d.path for d in change.differences}
    # What the settings check says about the integration itself (not about admin users etc.).
    findings = [f for f in check_settings(settings) if f.level == "fail" or (f.level == "warn" and f.subject == "settings")]
    if paths & set(VISMA_PATHS):
        for company in settings.companies:
            findings += check_company(settings, company)
    changed_clients = {parts[0] for p in paths if (parts := client_field(p)) is not None}
    if "default_company_no" in paths:
        changed_clients |= {c.name for c in settings.invoice_clients if c.company_no is None}
    for client in settings.invoice_clients:
        if client.name in changed_clients:
            findings += check_client(settings, client)
    return redacted(findings, settings)


def change_settings(live: LiveSettings, *, set_values: dict[str, Any], reset: Iterable[str], actor: str, now: datetime,
                    dry_run: bool = False, expected_version: int | None = None,
                    verify: Verify = verify_against_systems) -> dict:
    current = live.store.current()
    if expected_version is not None and expected_version != current.version:
        raise Conflict(f"the settings are at version {current.version} (changed by {current.changed_by}), "
                       f"not {expected_version}", "look at `vb2po config show` and make the change again")
    try:
        change = plan_change(live.base, current, set_values=set_values, reset=list(reset), actor=actor, now=now)
    except ChangeRefused as exc:
        raise Invalid(str(exc), exc.hint) from None
    findings = verify(change) if change.differences else []
    stored = bool(change.differences) or dict(change.overrides.values) != dict(current.values)
    answer = {
        "dry_run": dry_run,
        "version": change.overrides.version if stored and not dry_run else current.version,
        "changes": [d.as_dict() for d in change.differences],
        "notes": list(change.notes),
        "findings": [f.as_dict() for f in findings],
    }
    if failed(findings):
        problems = "; ".join(f"{f.subject}: {f.message}" for f in findings if f.level == "fail")
        fixes = "; ".join(dict.fromkeys(f.fix for f in findings if f.level == "fail" and f.fix))
        raise Invalid(f"the change was not made: {problems}", fixes)
    if dry_run or not stored:
        return answer
    try:
        live.publish(change.overrides)
    except ChangeRefused as exc:
        raise Conflict(str(exc), exc.hint) from None
    return answer


def describe(live: LiveSettings) -> dict:
    """The editable settings: effective value, the file's value, and who changed it when."""
    overrides, settings = live.overrides, live.settings
    fields = []
    for path in editable_paths(live.base):
        entry = {"path": path, "value": value_at(settings, path), "file_value": value_at(live.base, path),
                 "changed": path in overrides.values}
        fields.append(entry)
    return {"version": overrides.version, "changed_by": overrides.changed_by, "changed_at": overrides.changed_at,
            "fields": fields, "left_out": list(live.stale())}

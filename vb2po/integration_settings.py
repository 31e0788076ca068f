"""The integration settings an operator may change while vb2po runs (the seed's setup screen),
and how such changes sit on top of the settings file.

The settings file (or ConfigMap) holds everything; an operator with the `integration`
permission can change the fields below through the admin API. Those changes are kept as one
versioned record of *overrides* (a compacted Kafka topic, see `vb2po.live_settings`), so every
producer and consumer replica applies the same values and a restart keeps them. Connections
and secrets (ODBC strings, client keys, Kafka, PowerOffice keys) stay in the file and the
Kubernetes Secret: they are not editable here, so no secret ever travels through this record.

Everything here is pure: parse, apply, diff, describe.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Mapping

from pydantic import ValidationError

from vb2po.settings import Settings

# path -> what it means; `<client>` stands for an invoice client's name
EDITABLE: dict[str, str] = {
    "integration_enabled": "on: the producer reads Visma; off: it stops (events already published are still applied)",
    "lookback_date": "payments with an earlier voucher date are not transferred",
    "credit_block_sync": "customers with a credit block in Visma get time registration blocked in PowerOffice",
    "marker.field": "the CustTr column that marks a payment as registered in PowerOffice",
    "marker.value": "the value written into that column",
    "payment_rule.voucher_types": "the CustTr voucher types (VoTp) that are payments",
    "payment_rule.reversal_voucher_types": "the voucher types of counter-rows that reverse a payment (null: the payment types)",
    "unmatched_payments": "dead_letter, or on_account: a payment whose invoice PowerOffice does not know goes to the "
                          "customer's account",
    "default_company_no": "the Visma company of invoice clients that do not name one",
    "invoice_clients.<client>.bank_account": "the bank general-ledger account this client's payments are debited to",
    "invoice_clients.<client>.company_no": "the Visma company this invoice client maps to (null: the default)",
}
_CLIENT_FIELDS = ("bank_account", "company_no")
# Changing these changes what is read from or written to Visma: checked against every company.
VISMA_PATHS = ("marker.field", "marker.value", "payment_rule.voucher_types", "payment_rule.reversal_voucher_types",
               "credit_block_sync", "lookback_date")


class ChangeRefused(ValueError):
    """The change cannot be made; the message says why and `hint` how to do it right."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Overrides:
    """The operators' changes on top of the file: version 0 is "none yet"."""

    version: int = 0
    values: Mapping[str, Any] = field(default_factory=dict)  # path -> JSON value
    changed_by: str | None = None
    changed_at: str | None = None  # ISO 8601, UTC

    def encode(self) -> bytes:
        return json.dumps({"version": self.version, "values": dict(self.values), "changed_by": self.changed_by,
                           "changed_at": self.changed_at}, sort_keys=True).encode()

    @staticmethod
    def decode(raw: bytes) -> "Overrides":
        data = json.loads(raw)
        return Overrides(int(data["version"]), dict(data.get("values") or {}), data.get("changed_by"),
                         data.get("changed_at"))


def client_field(path: str) -> tuple[str, str] | None:
    """`invoice_clients.<name>.<field>` -> (name, field); None for any other path. A client's
    name may itself hold dots: the field is what follows the last one."""
    if not path.startswith("invoice_clients."):
        return None
    name, _, name_field = path[len("invoice_clients."):].rpartition(".")
    return name, name_field


def editable_paths(settings: Settings) -> list[str]:
    """Every path that can be changed in these settings (one pair per invoice client)."""
    paths = [p for p in EDITABLE if "<client>" not in p]
    for client in settings.invoice_clients:
        paths += [f"invoice_clients.{client.name}.{f}" for f in _CLIENT_FIELDS]
    return paths


def check_path(settings: Settings, path: str) -> None:
    if path in editable_paths(settings):
        return
    if (parts := client_field(path)) is not None:
        name = parts[0]
        known = [c.name for c in settings.invoice_clients]
        if name not in known:
            raise ChangeRefused(f"no invoice client {name!r}", f"known invoice clients: {known}")
        raise ChangeRefused(f"{path} cannot be changed here",
                            f"per invoice client only {', '.join(_CLIENT_FIELDS)}; "
                            "client keys live in the settings file / Secret")
    raise ChangeRefused(f"{path} cannot be changed through the admin API",
                        "changeable: " + ", ".join(EDITABLE) + "; everything else (connections, secrets, tuning) "
                        "lives in the settings file")


def _json_value(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


def value_at(settings: Settings, path: str) -> Any:
    """The current value at an editable path, as JSON."""
    if (parts := client_field(path)) is not None:
        name, name_field = parts
        return _json_value(getattr(settings.client(name), name_field))
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return _json_value(value)


def _put(data: dict, path: str, value: Any) -> bool:
    """Set `path` in a settings mapping; False when it names an invoice client that is gone."""
    if (parts := client_field(path)) is not None:
        name, name_field = parts
        for client in data["invoice_clients"]:
            if client["name"] == name:
                client[name_field] = value
                return True
        return False
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    target[last] = value
    return True


@dataclass(frozen=True)
class Applied:
    settings: Settings
    stale: tuple[str, ...] = ()  # overrides left out: their invoice client left the file, or they no longer fit


def apply_overrides(base: Settings, overrides: Overrides) -> Applied:
    """The effective settings: the file's, with the operators' changes on top.

    Raises `ChangeRefused` when the result is not valid settings (e.g. the file changed so that
    an old override no longer fits)."""
    if not overrides.values:
        return Applied(base)
    data = base.model_dump()  # SecretStr values stay SecretStr: nothing is revealed on the way
    stale = tuple(f"{p}: no invoice client of that name in the settings file"
                  for p, v in sorted(overrides.values.items()) if not _put(data, p, v))
    try:
        settings = Settings.model_validate(data)  # validates; does not read the environment again
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                    for e in exc.errors(include_input=False, include_url=False)]
        raise ChangeRefused("the changed settings are not valid: " + "; ".join(problems),
                            "see settings.example.yaml for each key's meaning") from None
    return Applied(settings, stale)


def apply_what_fits(base: Settings, overrides: Overrides) -> Applied:
    """Like `apply_overrides`, but an override that no longer fits the file (it changed since)
    is left out and reported in `stale` with the reason, instead of refusing them all."""
    try:
        return apply_overrides(base, overrides)
    except ChangeRefused:
        pass
    kept: dict[str, Any] = {}
    stale: list[str] = []
    for path, value in sorted(overrides.values.items()):
        try:
            apply_overrides(base, replace(overrides, values={**kept, path: value}))
            kept[path] = value
        except ChangeRefused as exc:
            stale.append(f"{path}: {exc}")
    applied = apply_overrides(base, replace(overrides, values=kept))
    return Applied(applied.settings, applied.stale + tuple(stale))


@dataclass(frozen=True)
class Difference:
    path: str
    before: Any
    after: Any

    def as_dict(self) -> dict:
        return {"path": self.path, "before": self.before, "after": self.after}


def differences(old: Settings, new: Settings) -> list[Difference]:
    paths = dict.fromkeys(editable_paths(old) + editable_paths(new))
    found = []
    for path in paths:
        try:
            before = value_at(old, path)
        except KeyError:
            before = None
        try:
            after = value_at(new, path)
        except KeyError:
            after = None
        if before != after:
            found.append(Difference(path, before, after))
    return found


@dataclass(frozen=True)
class Change:
    overrides: Overrides
    settings: Settings
    differences: tuple[Difference, ...]
    notes: tuple[str, ...]


def plan_change(base: Settings, current: Overrides, *, set_values: Mapping[str, Any], reset: list[str],
                actor: str, now: datetime) -> Change:
    """The new overrides record and effective settings for `set_values` and `reset` (paths back
    to the file's value), or `ChangeRefused`. A value equal to the file's drops the override."""
    if not set_values and not reset:
        raise ChangeRefused("nothing to change", "name at least one path=value to set, or a path to reset")
    for path in list(set_values) + [p for p in reset if p not in current.values]:
        check_path(base, path)  # (an override already stored can always be reset, even one left out)
    if overlap := sorted(set(set_values) & set(reset)):
        raise ChangeRefused(f"{overlap} both set and reset", "do one or the other")
    current_applied = apply_what_fits(base, current)
    # Overrides that no longer fit the file are not applied anywhere; a change drops them for good.
    dropped = [problem.partition(":")[0] for problem in current_applied.stale]
    values = {p: v for p, v in current.values.items() if p not in reset and p not in dropped}
    values.update({p: _json_value(v) for p, v in set_values.items()})
    before = current_applied.settings
    after = apply_overrides(base, Overrides(current.version, values)).settings
    # Keep only what differs from the file, in the form pydantic parsed it into.
    kept = {p: value_at(after, p) for p in values if value_at(after, p) != value_at(base, p)}
    diff = differences(before, after)
    overrides = Overrides(current.version + 1, kept, actor, now.isoformat())
    notes = notes_for(diff) + [f"removed the override of {p}, which no longer fit the settings file" for p in dropped
                               if p not in set_values]
    return Change(overrides, after, tuple(diff), tuple(notes))


def notes_for(diff: list[Difference]) -> list[str]:
    """What a change means for the running integration, in the operator's words."""
    notes = []
    for d in diff:
        if d.path in ("marker.field", "marker.value"):
            notes.append(f"{d.path} {d.before!r} -> {d.after!r}: the safety-net sweep runs now; payments marked only "
                         "the old way are looked up in PowerOffice before anything is posted, found registered "
                         "(no second voucher) and marked the new way")
        elif d.path == "lookback_date" and d.before and d.after and d.after < d.before:
            notes.append(f"lookback_date moved back to {d.after}: the sweep runs now and publishes the unmarked payments "
                         f"dated from then")
        elif d.path == "lookback_date":
            notes.append(f"lookback_date {d.after}: payments dated earlier are no longer transferred")
        elif d.path == "integration_enabled":
            notes.append("integration switched on: the producer reads Visma again" if d.after else
                         "integration switched off: the producer stops reading Visma; events already published are "
                         "still applied, and fetch now is refused")
        elif d.path == "credit_block_sync":
            notes.append("credit-block sync on: blocks in Visma are applied in PowerOffice from now" if d.after else
                         "credit-block sync off: no block or lift is applied any more; customers blocked now stay "
                         "blocked in PowerOffice until lifted there")
        elif d.path.endswith(".bank_account"):
            notes.append(f"{d.path}: payments applied from now are debited to account {d.after}")
        elif d.path.endswith(".company_no") or d.path == "default_company_no":
            notes.append(f"{d.path}: invoice clients now map to Visma companies as shown by `vb2po config show`")
        elif d.path == "payment_rule.voucher_types":
            notes.append(f"payments are now CustTr rows with VoTp in {d.after}; the sweep runs now")
    return notes


def parse_assignment(text: str) -> tuple[str, Any]:
    """`marker.field=Gr5`, `credit_block_sync=false`, `payment_rule.voucher_types=[3,4]` ->
    (path, value); the value is read as YAML, so numbers, booleans, dates and lists work."""
    import yaml

    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise ChangeRefused(f"expected PATH=VALUE, got {text!r}", "e.g. marker.field=Gr5 or lookback_date=2026-03-01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError):  # e.g. 2026-02-30: a date-looking text that is no date
        value = raw.strip()  # the settings validation then names the key and says what is wrong
    return path.strip(), _json_value(value)

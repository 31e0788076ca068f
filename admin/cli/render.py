"""Turning admin API answers into what a person reads: aligned tables, CSV, JSON. Pure."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from admin.actions.reconcile import reconcile_csv, reconcile_rows  # noqa: F401 - the commands' CSV is the console's


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    text = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in text]
    return "\n".join(lines)


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def ago(iso: str | None, now: datetime | None = None) -> str:
    if not iso:
        return "never"
    seconds = ((now or datetime.now(timezone.utc)) - datetime.fromisoformat(iso)).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


# -- reconcile ------------------------------------------------------------------------------
def reconcile_summary(job: dict) -> list[str]:
    lines = []
    for r in job.get("results", []):
        kinds = ", ".join(f"{k} {v}" for k, v in r["by_kind"].items() if v and k != "excluded_by_lookback")
        lookback = r["by_kind"].get("excluded_by_lookback", 0)
        lines.append(f"{r['client']} (Visma company {r['company_no']}): {r['compared']} invoices compared, "
                     f"{r['matching']} match, {r['open_differences']} open difference(s)"
                     + (f" ({kinds})" if kinds else "")
                     + (f"; {lookback} differ only by payments before the lookback date" if lookback else ""))
        for item in r.get("on_account", []):
            lines.append(f"  on account: {item['reference']} customer {item['customer_no']} "
                         f"{item['balance']} {item['currency']} (posted without an invoice)")
    return lines


def reconcile_table(job: dict) -> str:
    rows = reconcile_rows(job)
    headers = ("client", "invoice", "customer", "kind", "visma", "poweroffice", "difference", "currency", "unmarked")
    body = table(headers, [(r["client"], r["invoice_no"], r["customer_no"], r["kind"], r["visma_outstanding"],
                            r["poweroffice_balance"], r["difference"], r.get("currency", ""), r["unmarked_in_visma"])
                           for r in rows])
    return (body + "\n" if rows else "no differences\n") + "\n".join(reconcile_summary(job))


# -- status ---------------------------------------------------------------------------------
def status_text(status: dict) -> str:
    lines = [f"integration {'on' if status['integration_enabled'] else 'OFF'}, credit-block sync "
             f"{'on' if status['credit_block_sync'] else 'off'}  (as of {status['at']})"]
    for c in status["companies"]:
        lag = c["cursor_lag"]
        lines.append(f"company {c['company_no']}  invoice clients: {', '.join(c['invoice_clients']) or '-'}")
        poll = f"{ago(c['last_poll_at'])}"
        if c["last_failure"]:
            poll += f"; last failure {c['last_failure']['reason']} {ago(c['last_failure']['at'])}"
        if c["fenced"]:
            poll += "; FENCED by another producer instance"
        lines.append(f"  last poll          {poll}")
        if "error" in lag:
            lines.append(f"  cursor lag         unknown: {lag['error']}")
        else:
            waiting = f"{lag['waiting']}{'+' if lag['waiting_capped'] else ''}"
            cursor = lag["cursor"]
            at = (f"cursor at change {cursor['changed_at']} (JNo {cursor['jno']}, EntNo {cursor['entno']})" if cursor
                  else "no cursor yet")
            lines.append(f"  cursor lag         {lag['lag_s']:.0f}s, {waiting} payment(s) waiting; {at}")
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(c["dead_letters_by_reason"].items()))
        lines.append(f"  dead letters       {c['dead_letters_open']} open" + (f" ({reasons})" if reasons else ""))
        shown = ", ".join(str(n) for n in c["blocked_customer_nos"])
        more = "" if len(c["blocked_customer_nos"]) >= c["blocked_customers"] else ", ..."
        lines.append(f"  blocked customers  {c['blocked_customers']}" + (f": {shown}{more}" if shown else ""))
    g = status["consumer"]
    lag = ", ".join(f"{k} {v}" for k, v in g["lag"].items())
    lines.append(f"consumer group {g['group']}: {g['state']}, {g['members']} member(s); lag {lag}")
    if status.get("dead_letters_without_company"):
        lines.append(f"dead letters without a company (undecodable events): {status['dead_letters_without_company']}")
    return "\n".join(lines)


# -- settings -------------------------------------------------------------------------------
def as_yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip()


def setting_changes(changes: dict) -> str:
    """The editable settings and where each value comes from."""
    head = (f"changed through the admin API: version {changes['version']}, by {changes['changed_by']} at "
            f"{changes['changed_at']}" if changes["version"] else "changed through the admin API: nothing (all from the file)")
    rows = [(f["path"], json.dumps(f["value"]),
             f"changed (the file has {json.dumps(f['file_value'])})" if f["changed"] else "the file")
            for f in changes["fields"]]
    lines = ["", "# " + head, table(("setting", "value", "from"), rows)]
    lines += [f"LEFT OUT  {problem}" for problem in changes.get("left_out", [])]
    return "\n".join(lines)


def setting_change(answer: dict) -> str:
    if not answer["changes"] and not answer["notes"]:
        return "no change: the settings already have these values"
    verb = "would change (dry run)" if answer["dry_run"] else f"changed (settings version {answer['version']})"
    lines = [verb + ":"]
    lines += [f"  {c['path']}: {json.dumps(c['before'])} -> {json.dumps(c['after'])}" for c in answer["changes"]]
    lines += [f"  note: {n}" for n in answer["notes"]]
    lines += [f"  {f['level']}: {f['subject']}: {f['message']}" for f in answer["findings"] if f["level"] != "ok"]
    if not answer["dry_run"]:
        lines.append("the producer and consumers apply it within a few seconds")
    return "\n".join(lines)

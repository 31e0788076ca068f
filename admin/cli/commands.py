"""The operator commands of `vb2po`: most call the admin API with the operator's personal token
(`--token` or VB2PO_TOKEN); `config check` and the `--local` token commands (the bootstrap
path for the first token) work from the settings file alone.

Progress goes to stderr, results to stdout; a command exits 1 when it did not do what it was
asked (refused, failed, timed out, or applied fewer payments than it published).
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, cast

from admin.cli import render
from admin.cli.client import AdminApiError, AdminClient

TOKEN_ENV = "VB2PO_TOKEN"
ADMIN_URL_ENV = "VB2PO_ADMIN_URL"
DEFAULT_ADMIN_URL = "http://127.0.0.1:9465"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def out(text: str) -> None:
    print(text, flush=True)


# -- reaching the API -------------------------------------------------------------------------
def admin_url(args: argparse.Namespace, load_settings: Callable[[], Any] | None) -> str:
    if getattr(args, "admin_url", None):
        return args.admin_url
    if os.environ.get(ADMIN_URL_ENV):
        return os.environ[ADMIN_URL_ENV]
    if load_settings is not None:
        try:
            return load_settings().admin.api_url
        except Exception:  # noqa: BLE001 - an operator's laptop need not hold the whole settings file
            pass
    return DEFAULT_ADMIN_URL


def api(args: argparse.Namespace, load_settings: Callable[[], Any] | None) -> AdminClient:
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV)
    if not token:
        raise AdminApiError(401, "no token: set VB2PO_TOKEN (or pass --token) to your personal token",
                            "ask someone with the integration permission for one (`vb2po token create --user NAME`); "
                            "the very first one is made with `vb2po token create --user NAME --local`")
    return AdminClient(admin_url(args, load_settings), token, timeout_s=getattr(args, "http_timeout", 600))


def run_api_command(command: Callable[[argparse.Namespace, AdminClient], int], args: argparse.Namespace,
                    load_settings: Callable[[], Any] | None) -> int:
    try:
        with api(args, load_settings) as client:
            return command(args, client)
    except AdminApiError as exc:
        label = {401: "not signed in", 403: "not allowed"}.get(exc.status, "failed")
        say(f"vb2po: {label}: {exc}")
        if exc.hint:
            say(f"  hint: {exc.hint}")
        return 1


# -- fetch now ----------------------------------------------------------------------------------
def fetch_now(args: argparse.Namespace, client: AdminClient) -> int:
    job = client.post("/v1/fetch", {"all": True} if args.all else {"client": args.client})
    out(f"fetch {job['fetch_id']} by {job['requested_by']} ({job['scope']})")
    for c in job["companies"]:
        if c["error"]:
            out(f"  company {c['company_no']} ({', '.join(c['clients'])}): FAILED: {c['error']}")
        else:
            out(f"  company {c['company_no']} ({', '.join(c['clients'])}): {c['published']} payment(s) published, "
                f"{c['bad_rows']} bad row(s)")
    failed = any(c["error"] for c in job["companies"])
    if not args.wait:
        if args.json:
            out(render.as_json(job))
        return 1 if failed else 0
    if job["published"] == 0:
        out("nothing to wait for: no payment was published")
        return 1 if failed else 0
    say(f"waiting up to {args.timeout:.0f}s for the consumers to apply {job['published']} payment(s) ...")
    deadline, shown = time.monotonic() + args.timeout, None
    while True:
        job = client.get(f"/v1/fetch/{job['fetch_id']}")
        p = job["progress"]
        line = f"  {p['applied']}/{p['published']} applied, {p['dead_lettered']} dead-lettered, {p['pending']} waiting"
        if p.get("error"):
            line += f" ({p['error']})"
        if line != shown:
            say(line)
            shown = line
        if p["done"] or time.monotonic() > deadline:
            break
        time.sleep(args.interval)
    if args.json:
        out(render.as_json(job))
    for letter in p["dead_letters"]:
        out(f"  dead-lettered: company {letter['company_no']} {letter['source_key']}: {letter['reason']}")
    if not p["done"]:
        out(f"timed out: {p['pending']} of {p['published']} payment(s) not applied after {args.timeout:.0f}s "
            "(are the consumers running? `vb2po status` shows the consumer lag)")
        return 1
    out(f"done: {p['applied']}/{p['published']} applied in PowerOffice and marked in Visma"
        + (f", {p['dead_lettered']} dead-lettered (`vb2po dead-letters list`)" if p["dead_lettered"] else ""))
    return 1 if failed or p["dead_lettered"] else 0


# -- status, config, whoami, audit ------------------------------------------------------------------
def status(args: argparse.Namespace, client: AdminClient) -> int:
    data = client.get("/v1/status")
    out(render.as_json(data) if args.json else render.status_text(data))
    return 0


def whoami(args: argparse.Namespace, client: AdminClient) -> int:
    me = client.get("/v1/me")
    out(f"{me['user']} (token {me['token_id']}); groups: {', '.join(me['groups']) or '-'}; "
        f"permissions: {', '.join(me['permissions']) or '-'}")
    return 0


def config_show(args: argparse.Namespace, client: AdminClient) -> int:
    shown = client.get("/v1/config")
    if args.json:
        out(render.as_json(shown))
        return 0
    changes = shown.pop("changes", None)
    out(render.as_yaml(shown))
    if changes is not None:
        out(render.setting_changes(changes))
    return 0


def config_change(args: argparse.Namespace, client: AdminClient) -> int:
    """`vb2po config set PATH=VALUE ...` and `vb2po config reset PATH ...`."""
    from vb2po.integration_settings import ChangeRefused, parse_assignment

    body: dict[str, Any] = {"set": {}, "reset": [], "dry_run": args.dry_run}
    if args.config_command == "set":
        try:
            body["set"] = dict(parse_assignment(a) for a in args.assignments)
        except ChangeRefused as exc:
            say(f"vb2po: {exc}")
            say(f"  hint: {exc.hint}")
            return 2
    else:
        body["reset"] = list(args.paths)
    answer = client.patch("/v1/config", body)
    out(render.setting_change(answer))
    return 0


def audit(args: argparse.Namespace, client: AdminClient) -> int:
    entries = client.get("/v1/audit", limit=args.limit, actor=args.actor)
    if args.json:
        out(render.as_json(entries))
        return 0
    out(render.table(("at", "actor", "action", "target", "outcome", "detail"),
                     [(e["at"], e["actor"] or "-", e["action"], e["target"] if e["target"] is not None else "",
                       e["outcome"], e["detail"]) for e in entries]))
    return 0


# -- dead letters ---------------------------------------------------------------------------------
def dead_letters_list(args: argparse.Namespace, client: AdminClient) -> int:
    found = client.get("/v1/dead-letters", reason=args.reason, company_no=args.company, stage=args.stage,
                       open="true" if args.open else None)
    if args.json:
        out(render.as_json(found))
        return 0
    out(render.table(("id", "stage", "reason", "company", "source key", "failed at", "state"),
                     [(letter["id"], letter["stage"], letter["reason"], letter["company_no"], letter["source_key"],
                       letter["failed_at"],
                       "open" if letter["open"] else f"redriven by {letter['redrives'][-1]['by']}") for letter in found]))
    say(f"{len(found)} dead letter(s), {sum(1 for letter in found if letter['open'])} open")
    return 0


def dead_letters_show(args: argparse.Namespace, client: AdminClient) -> int:
    out(render.as_json(client.get(f"/v1/dead-letters/{args.id}")))
    return 0


def dead_letters_redrive(args: argparse.Namespace, client: AdminClient) -> int:
    result = client.post("/v1/dead-letters/redrive", {"ids": args.ids, "all": args.all, "reason": args.reason,
                                                      "company_no": args.company, "dry_run": args.dry_run})
    for r in result["results"]:
        where = f" -> {r['topic']}" if r.get("topic") else ""
        why = f": {r['why']}" if r.get("why") else ""
        out(f"  {r['id']}: {r['outcome']}{where}{why}")
    verb = "would redrive" if args.dry_run else "redriven"
    out(f"{result['would_redrive' if args.dry_run else 'redriven']} {verb}, {result['skipped']} skipped")
    return 0


# -- replay ------------------------------------------------------------------------------------------
def replay(args: argparse.Namespace, client: AdminClient) -> int:
    body = {"to_offset": args.to_offset, "to_time": args.to_time, "to_beginning": args.to_beginning,
            "topics": args.topic or ["payments", "credit-blocks"], "partitions": args.partition or None,
            "through_group": args.through_group, "dry_run": args.dry_run, "allow_skip": args.allow_skip,
            "list_limit": args.limit}
    result = client.post("/v1/replay", body)
    if args.json:
        out(render.as_json(result))
        return 0
    out(f"group {result['group']} ({result['group_state']}, {result['group_members']} member(s))")
    out(render.table(("topic", "partition", "current", "target", "again", "skipped"),
                     [(p["topic"], p["partition"], "-" if p["current"] is None else p["current"], p["target"],
                       p["again"], p["skipped"]) for p in result["partitions"]]))
    if result["events"]:
        out(render.table(("partition", "offset", "event", "company", "source key", "customer", "invoice", "amount"),
                         [(e["partition"], e["offset"], e["event_type"], e.get("company_no"), e.get("source_key"),
                           e.get("customer_no"), e.get("invoice_no", ""), e.get("amount", "")) for e in result["events"]]))
        if len(result["events"]) < result["again"]:
            out(f"... and {result['again'] - len(result['events'])} more")
    if result["dry_run"]:
        out(f"dry run: {result['again']} event(s) would be processed again, {result['skipped']} skipped; nothing changed")
    elif args.through_group:
        out(f"group {result['group']} now starts at the targets: run `vb2po consumer --group {result['group']} "
            f"--until-caught-up` to process the {result['again']} event(s)")
    else:
        out(f"group {result['group']} moved: {result['again']} event(s) will be processed again when the consumers start")
    return 0


# -- reconcile ---------------------------------------------------------------------------------------
def reconcile(args: argparse.Namespace, client: AdminClient) -> int:
    job = client.post("/v1/reconcile", {"client": args.client})
    say(f"reconcile {job['reconcile_id']}: {', '.join(job['clients'])}")
    deadline, shown = time.monotonic() + args.timeout, 0
    while True:
        history = job["progress"]["history"]
        for line in history[shown:]:
            say(f"  {line}")
        shown = len(history)
        if job["finished"]:
            break
        if time.monotonic() > deadline:
            say(f"timed out after {args.timeout:.0f}s; the run goes on: GET /v1/reconcile/{job['reconcile_id']}")
            return 1
        time.sleep(args.interval)
        job = client.get(f"/v1/reconcile/{job['reconcile_id']}")
    if job["error"]:
        say(f"vb2po: reconcile failed: {job['error']}")
        return 1
    text = {"json": lambda: render.as_json(job), "csv": lambda: render.reconcile_csv(job),
            "table": lambda: render.reconcile_table(job)}[args.format]()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        say(f"written to {args.output}")
        for line in render.reconcile_summary(job):
            say(line)
    else:
        out(text.rstrip("\n"))
    return 0


# -- tokens -------------------------------------------------------------------------------------------
def _local_actor() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "local"


def sign_in_link(admin_url: str, token: str) -> str:
    """The console's sign-in link: the token rides in the URL fragment, which a browser never sends
    to a server (nor in a Referer); the sign-in page takes it out of the address bar and history
    at once and posts it like a typed token."""
    return f"{admin_url.rstrip('/')}/console/sign-in#token={token}"


def _show_token(created: dict, admin_url: str) -> None:
    out(created["token"])
    say(f"token {created['token_id']} for {created['user']}, valid until {created['expires_at']}; "
        "shown once: keep it in a password manager, use it as VB2PO_TOKEN")
    say(f"console sign-in link (as secret as the token; for the person it is for only): "
        f"{sign_in_link(admin_url, created['token'])}")


def token_api(args: argparse.Namespace, client: AdminClient) -> int:
    if args.token_command == "create":
        _show_token(client.post("/v1/tokens", {"user": args.user, "ttl_days": args.ttl_days,
                                               "description": args.description}), client.url)
    elif args.token_command == "list":
        _print_tokens(client.get("/v1/tokens"))
    else:
        revoked = client.delete(f"/v1/tokens/{args.token_id}")
        out(f"token {revoked['token_id']} of {revoked['user']} revoked at {revoked['revoked_at']}")
    return 0


def _print_tokens(tokens: list[dict]) -> None:
    out(render.table(("id", "user", "state", "expires", "created by", "description"),
                     [(t["token_id"], t["user"], t["state"], t["expires_at"], t["created_by"], t["description"])
                      for t in tokens]))


def token_local(args: argparse.Namespace, settings) -> int:
    """Straight to Kafka with the settings file: the bootstrap path for the first token."""
    from admin.api.audit import AuditEntry, KafkaAuditLog
    from admin.api.token_store import KafkaTokenStore
    from admin.api.tokens import issue, valid_token_id
    from vb2po.kafka.topics import ensure_topics

    actor, now = _local_actor(), datetime.now(timezone.utc)
    ensure_topics(settings.kafka)
    store, audit_log = KafkaTokenStore(settings.kafka), KafkaAuditLog(settings.kafka)
    try:
        if args.token_command == "create":
            if settings.admin.user(args.user) is None:
                say(f"vb2po: no user {args.user!r} under admin.users; declare the user and their groups first")
                audit_log.write(AuditEntry("token.create", "invalid", actor, target=args.user, detail="unknown user"))
                return 1
            days = args.ttl_days or settings.admin.token_ttl_days
            issued = issue(args.user, created_by=actor, now=now, ttl=timedelta(days=days), description=args.description)
            store.put(issued.record)
            audit_log.write(AuditEntry("token.create", "ok", actor, issued.record.token_id, target=args.user,
                                       detail=f"local; {days} days"))
            _show_token({"token": issued.token, **issued.record.public(now)}, admin_url(args, lambda: settings))
        elif args.token_command == "list":
            audit_log.write(AuditEntry("token.list", "ok", actor, detail="local"))
            _print_tokens([r.public(now) for r in store.all()])
        else:
            record = store.get(args.token_id) if valid_token_id(args.token_id) else None
            if record is None:
                say(f"vb2po: no token {args.token_id!r}")
                audit_log.write(AuditEntry("token.revoke", "not_found", actor, target=args.token_id, detail="local"))
                return 1
            revoked = record.revoke(actor, now)
            revoked_at = cast(datetime, revoked.revoked_at)  # revoke() sets it (now, or when it was revoked before)
            store.put(revoked)
            audit_log.write(AuditEntry("token.revoke", "ok", actor, record.token_id, target=record.user, detail="local"))
            out(f"token {revoked.token_id} of {revoked.user} revoked at {revoked_at.isoformat()}")
        return 0
    finally:
        store.close()
        audit_log.close()

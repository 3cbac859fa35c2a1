"""The employee's local page: consent per category with the full notice, pause, my data, batches, ledger.

Every action calls the same library functions as the CLI (``vault.consent_ops``, ``vault.batches``)
and then tells the agent, as ``consentry consent ...`` does; a grant needs the full notice on screen
and an explicit confirmation, and records the SHA-256 of exactly the text that was shown.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar

from agent.web.mydata_view import mydata_context
from agent.words import counted
from kit.web import templates
from kit.web.server import Request, Response
from protocol.categories import ALL_CATEGORIES, Category
from protocol.errors import ConsentError, ConsentryError, InvalidRecord, PolicyError
from protocol.timeutil import parse_iso, utc_now
from vault import batches as batch_ops
from vault import consent_ops, outbox
from vault.ledger_head import HeadState
from vault.paths import Layout
from vault.policy import MachinePolicy, load_policy
from vault.vault import Vault

TITLE = "Consentry: your consent and your data"
NAV = (("/", "Consent"), ("/mydata", "My data"), ("/batches", "Batches"), ("/ledger", "Ledger"), ("/erase", "Erase"))
_BATCH_ID = re.compile(r"^[0-9a-f]{32}$")
PAUSES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1)}
# Fixed messages after an action, chosen by code: a link can never make this page say anything else.
DONE = {
    "granted": "Consent granted for {c}. Capture of {c} starts now.",
    "already": "{c} was already granted under this notice; nothing changed.",
    "revoked": "Consent for {c} withdrawn. The agent confirmed that capture of {c} stopped.",
    "not-granted": "{c} was not granted; nothing to withdraw.",
    "paused": "All capture is paused.",
    "resumed": "Capture resumed (only the categories you granted).",
    "not-paused": "Nothing was paused.",
    "vetoed": "Batch vetoed: its data was destroyed and it will never leave this computer.",
    "released": "Batch released early: it goes to the data stewards' review at the next sync.",
    "unconfirmed": "Recorded in the ledger, but the agent did not confirm yet; it re-reads consent every second.",
}
DONE_BAD = {"unconfirmed"}

Notify = Callable[[], bool]


class EmployeePage:
    """The routes of the employee's page; served by ``kit.web.server.PageServer`` inside the agent."""

    title = TITLE

    def __init__(
        self,
        home: Layout,
        policy_path: Path,
        notify: Notify,
        *,
        clock: Callable[[], datetime] = utc_now,
        tz: tzinfo | None = None,
    ) -> None:
        self.home = home
        self.policy_path = policy_path
        self.notify = notify
        self.clock = clock
        self.tz = tz

    # -- routing ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        method = "GET" if request.method == "GET" else "POST"  # the server answers only GET and POST
        try:
            for route_method, pattern, handler in self.ROUTES:
                if route_method == method and (args := _match(pattern, parts)) is not None:
                    return handler(self, request, *args)
        except (ConsentryError, PolicyError, OSError) as exc:
            # Our errors are written for the employee; an OS error shows its kind only (no path).
            message = (
                str(exc) if not isinstance(exc, OSError) else f"the vault could not be used ({type(exc).__name__})"
            )
            if isinstance(exc, InvalidRecord):  # name the command that explains and mends it
                from vault.integrity import INTEGRITY_HINT

                message = f"stored data failed its integrity check ({exc}). {INTEGRITY_HINT}"
            return self._message(request, message + "; nothing was changed.", 409)
        return self._message(request, "There is no such page here.", 404, here="")

    def _page(self, request: Request, here: str, template: str, status: int = 200, **context: Any) -> Response:
        """One of this page's templates (agent/web/templates/), in the layout with this page's navigation."""
        html = templates.page(
            "agent.web", template, title=TITLE, nonce=request.nonce, nav=NAV, here=here, csrf=request.csrf, **context
        )
        return Response.html(html, status)

    def _message(self, request: Request, message: str, status: int, *, here: str = "/") -> Response:
        """A page that only says ``message`` (a refusal or an error), as a red notice."""
        return Response.html(templates.message_page(TITLE, message, request.nonce, nav=NAV, here=here), status)

    # -- shared -----------------------------------------------------------------------------------

    def _vault(self) -> Vault:
        return Vault.open(self.home)

    def _policy(self, *, strict: bool) -> MachinePolicy:
        """The machine policy; for withdrawing or looking an invalid one means the defaults (as the CLI)."""
        try:
            return load_policy(self.policy_path)
        except PolicyError:
            if strict:
                raise
            return MachinePolicy()

    def _done(self, request: Request) -> dict[str, Any]:
        """The fixed message after an action (``done`` and ``done_bad`` for the templates); empty if none."""
        code = request.query.get("done", "")
        if code not in DONE:
            return {"done": "", "done_bad": False}
        who = _category(request.query.get("c", ""))
        return {"done": DONE[code].format(c=who.value if who else "it"), "done_bad": code in DONE_BAD}

    def _local_tz(self) -> tzinfo:
        return self.tz or datetime.now().astimezone().tzinfo or UTC

    def _local(self, when: datetime | None) -> str:
        if when is None:
            return "-"
        return when.astimezone(self._local_tz()).strftime("%Y-%m-%d %H:%M %Z")

    def _agent_status(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.home.agent_status.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # -- consent overview and pause ---------------------------------------------------------------

    def _live(self, vault: Vault, policy: MachinePolicy) -> dict[str, Any]:
        """What the overview shows that can change while it is open: consent and capture per category (a pause
        or a withdrawal from the CLI or the tray, a pause that ends, the agent stopping), held batches, the
        ledger's last entry. Cheap to compute: the open page asks for its fingerprint every few seconds."""
        snapshot = vault.consent(policy)
        held = len(outbox.list_batches(vault, ("held",)))
        head = vault.ledger_head_state()
        status = self._agent_status() or {}
        capture = status.get("categories") if isinstance(status.get("categories"), dict) else {}
        rows = []
        for category in ALL_CATEGORIES:
            state = snapshot.categories[category]
            now_state = (capture or {}).get(category.value, {}) if isinstance(capture, dict) else {}
            capturing = now_state.get("state", "unknown") if isinstance(now_state, dict) else "unknown"
            if status.get("agent_state") != "running":
                capturing = "agent not running"
            rows.append(
                {
                    "category": category.value,
                    "state": state.state,
                    "reason": state.reason,
                    "since": self._local(state.since),
                    "capturing": str(capturing),
                    "in_force": _in_force(state.state),  # suspended and forbidden grants can be withdrawn too
                    "decide": state.state != "granted" and policy.allows(category),
                }
            )
        paused = snapshot.paused_until
        paused_until = ""
        if snapshot.is_paused(self.clock()):
            paused_until = "until you resume" if paused and paused.year >= 9999 else f"until {self._local(paused)}"
        return {
            "rows": rows,
            "paused_until": paused_until,
            "held": counted(held, "batch", "batches"),
            "ledger_seq": head.db_seq,
            "ledger_warnings": _ledger_warnings(head, status),
        }

    def _overview(self, request: Request) -> Response:
        policy = self._policy(strict=False)
        with self._vault() as vault:
            live = self._live(vault, policy)
            report = vault.ledger.verify(vault.device_key.public_bytes)
        return self._page(
            request,
            "/",
            "overview.html",
            **live,
            shown=_fingerprint(live),
            pauses=(
                ("15m", "Pause 15 min"),
                ("1h", "Pause 1 hour"),
                ("tomorrow", "Until tomorrow"),
                ("resume", "Until I resume"),
            ),
            ledger_ok=report.ok,
            ledger_entries=counted(report.entries, "entry", "entries"),
            ledger_broken_at=report.first_broken_seq,
            **self._done(request),
        )

    def _state(self, request: Request) -> Response:
        """The open overview's question "has what I show changed?" (``kit.web.server.STATE_PATH``)."""
        with self._vault() as vault:
            live = self._live(vault, self._policy(strict=False))
        return Response.json({"shown": _fingerprint(live)})

    def _consent_page(self, request: Request, category: Category) -> Response:
        try:
            policy = self._policy(strict=True)
            policy_problem = None
        except PolicyError as exc:
            policy, policy_problem = MachinePolicy(), str(exc)
        notice, text = consent_ops.notice_shown(category, policy)
        with self._vault() as vault:
            state = vault.consent(policy).categories[category]
        return self._page(
            request,
            "/",
            "consent.html",
            category=category.value,
            state=state.state,
            reason=state.reason,
            sections=consent_ops.notice_sections(category, policy),
            exact=text,
            in_force=_in_force(state.state),
            since=self._local(state.since),
            policy_problem=policy_problem,
            offered=policy.allows(category),
            notice_sha256=consent_ops.notice_sha256(text),
            version=notice.version,
            **self._done(request),
        )

    def _grant(self, request: Request, category: Category) -> Response:
        policy = self._policy(strict=True)
        _, text = consent_ops.notice_shown(category, policy)
        if request.field("confirm") != "yes":
            return self._refused(request, "Nothing was granted: tick the box to confirm you agree, then grant.")
        if request.field("notice_sha256") != consent_ops.notice_sha256(text):
            return self._refused(request, "Nothing was granted: the notice changed since you opened it. Read it again.")
        folders: list[Path] = []
        if category is Category.FILES:
            folders = [
                Path(line.strip()).expanduser()
                for line in (request.field("folders") or "").splitlines()
                if line.strip()
            ]
            if not folders:
                return self._refused(request, "Nothing was granted: 'files' needs at least one folder to watch.")
            missing = [f for f in folders if not f.is_dir()]
            if missing:
                return self._refused(request, f"Nothing was granted: {missing[0]} is not a folder on this computer.")
        with self._vault() as vault:
            if folders:
                from agent.watched_folders import write_watched_folders

                # The receipt records the scope of exactly the list written (issue 7 item 5).
                folders = list(write_watched_folders(vault.layout, folders).folders)
            try:
                _, created = consent_ops.grant(
                    vault, policy, category, method="page", confirmation="page-checkbox-same-user", now=self.clock(),
                    folders=folders or None,
                )  # fmt: skip
            except ConsentError as exc:
                return self._refused(request, f"Nothing was granted: {exc}.")
        self.notify()
        return Response.redirect(
            f"/consent/{category.value}", done="granted" if created else "already", c=category.value
        )

    def _revoke(self, request: Request, category: Category) -> Response:
        policy = self._policy(strict=False)
        with self._vault() as vault:
            withdrawn = consent_ops.revoke(vault, policy, [category], method="page", now=self.clock())
        if not withdrawn:
            return Response.redirect(f"/consent/{category.value}", done="not-granted", c=category.value)
        confirmed = self.notify()
        return Response.redirect(
            f"/consent/{category.value}", done="revoked" if confirmed else "unconfirmed", c=category.value
        )

    def _pause(self, request: Request) -> Response:
        choice = request.field("for") or ""
        now = self.clock()
        if choice in PAUSES:
            until: datetime | None = now + PAUSES[choice]
        elif choice == "tomorrow":
            local = now.astimezone(self._local_tz())
            until = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), local.tzinfo).astimezone(
                UTC
            )
        elif choice == "resume":
            until = None
        else:
            return self._refused(request, "Unknown pause length; nothing was changed.")
        with self._vault() as vault:
            consent_ops.pause(vault, until=until, method="page", now=now)
        return Response.redirect("/", done="paused" if self.notify() else "unconfirmed")

    def _resume(self, request: Request) -> Response:
        with self._vault() as vault:
            resumed = consent_ops.resume(vault, self._policy(strict=False), reason="employee", now=self.clock())
        self.notify()
        return Response.redirect("/", done="resumed" if resumed else "not-paused")

    def _refused(self, request: Request, message: str) -> Response:
        return self._message(request, message, 400)

    # -- my data ----------------------------------------------------------------------------------

    def _mydata(self, request: Request) -> Response:
        tz = self._local_tz()
        today = self.clock().astimezone(tz).date()
        with self._vault() as vault:
            shown = mydata_context(vault, request.query.get("day"), tz, today, query=request.query)
        return self._page(request, "/mydata", "mydata.html", **shown)

    # -- batches ----------------------------------------------------------------------------------

    def _batches(self, request: Request) -> Response:
        with self._vault() as vault:
            infos = outbox.list_batches(vault)
        rows = [
            {
                "info": info,
                "preview": info.state in batch_ops.PENDING_STATES,
                "period": _period(info.period_start, info.period_end, self._local_tz()),
                "records": ", ".join(f"{k} {v}" for k, v in info.record_counts.items()),
                "held_until": self._local(parse_iso(info.hold_until)) if info.state == "held" else "-",
            }
            for info in reversed(infos)
        ]
        return self._page(request, "/batches", "batches.html", rows=rows, **self._done(request))

    def _batch(self, request: Request, batch_id: str) -> Response:
        from agent.web.record_view import receipt_link_rows, shown_record
        from vault.receipt_links import receipt_links

        with self._vault() as vault:
            info = outbox.get_batch(vault, batch_id)
            records = batch_ops.preview_records(vault, info)
            links = receipt_links(vault, batch_id)
            granted = {
                rid: (s.receipt.category.value, self._local(s.granted_at)) for rid, s in vault.receipt_spans().items()
            }
        cited = {r["receipt_id"]: links.get(r["receipt_id"]) for r in records}
        tz = self._local_tz()
        rows = [
            (datetime.fromtimestamp(int(r["start"]), tz).strftime("%Y-%m-%d %H:%M %Z"), r["category"], shown_record(r))
            for r in records
        ]
        return self._page(
            request,
            "/batches",
            "batch.html",
            info=info,
            record_count=counted(sum(info.record_counts.values()), "record"),
            period=_period(info.period_start, info.period_end, tz),
            checks=info.privacy_checks,
            rows=rows,
            link_rows=receipt_link_rows(cited, granted),
        )

    def _veto(self, request: Request, batch_id: str) -> Response:
        with self._vault() as vault:
            batch_ops.veto(vault, batch_id, self.clock())
        return Response.redirect("/batches", done="vetoed")

    def _release(self, request: Request, batch_id: str) -> Response:
        with self._vault() as vault:
            batch_ops.release(vault, batch_id, self.clock())
        return Response.redirect("/batches", done="released")

    # -- ledger -----------------------------------------------------------------------------------

    def _ledger(self, request: Request) -> Response:
        with self._vault() as vault:
            report = vault.ledger.verify(vault.device_key.public_bytes)
            entries = list(vault.ledger.entries())
        rows = [
            (
                entry.seq,
                self._local(parse_iso(entry.at)),
                entry.kind,
                entry.body.get("category")
                or ", ".join(entry.body.get("categories", []) or [])
                or entry.body.get("batch_id", ""),
            )
            for entry in reversed(entries[-100:])
        ]
        entries_shown = counted(report.entries, "entry", "entries")
        return self._page(request, "/ledger", "ledger.html", report=report, entries=entries_shown, rows=rows)

    def _erase(self, request: Request) -> Response:
        from agent.web import erase_view  # the erase choices, question and erasure: agent/web/erase_view.py

        return erase_view.handle(self, request)

    # -- the routes: (method, path segments, handler); a "{name}" segment is checked by _PARAMETERS,
    # and its value passed to the handler. Anything not listed is "There is no such page here."
    ROUTES: ClassVar[tuple[tuple[str, tuple[str, ...], Callable[..., Response]], ...]] = (
        ("GET", (), _overview),
        ("GET", ("state",), _state),
        ("GET", ("consent", "{category}"), _consent_page),
        ("POST", ("consent", "{category}", "grant"), _grant),
        ("POST", ("consent", "{category}", "revoke"), _revoke),
        ("POST", ("pause",), _pause),
        ("POST", ("resume",), _resume),
        ("GET", ("mydata",), _mydata),
        ("GET", ("batches",), _batches),
        ("GET", ("batches", "{batch_id}"), _batch),
        ("POST", ("batches", "{batch_id}", "veto"), _veto),
        ("POST", ("batches", "{batch_id}", "release"), _release),
        ("GET", ("ledger",), _ledger),
        ("GET", ("erase",), _erase),
        ("POST", ("erase",), _erase),
    )


def _ledger_warnings(head: HeadState, status: dict[str, object]) -> list[tuple[str, str]]:
    """What the page says (a state badge, a sentence) when the signed head lags or disagrees, or the store
    contradicts this ledger."""
    lines = []
    if not head.ok:
        lines.append(("broken", head.explain()))
    elif head.lagging:
        lines.append(("head_behind", head.explain()))
    witness = status.get("ledger_witness") if status.get("agent_state") == "running" else None
    if isinstance(witness, dict) and witness.get("state") not in (None, "confirmed", "not-configured"):
        lines.append(("capture_stopped", str(witness.get("message") or "")))
    return lines


def _fingerprint(live: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(live, sort_keys=True).encode()).hexdigest()


def _in_force(state: str) -> bool:
    return state in ("granted", "suspended", "forbidden")


def _category(name: str) -> Category | None:
    try:
        return Category(name)
    except ValueError:
        return None


def _period(start: int, end: int, tz: tzinfo) -> str:
    fmt = "%Y-%m-%d %H:%M %Z"
    return f"{datetime.fromtimestamp(start, tz).strftime(fmt)} – {datetime.fromtimestamp(end, tz).strftime(fmt)}"


def _batch_id(segment: str) -> str | None:
    return segment if _BATCH_ID.match(segment) else None


_PARAMETERS: dict[str, Callable[[str], object | None]] = {"{category}": _category, "{batch_id}": _batch_id}


def _match(pattern: tuple[str, ...], parts: list[str]) -> list[object] | None:
    """The handler's arguments if ``parts`` (the path's segments) fit ``pattern``; None if they do not."""
    if len(pattern) != len(parts):
        return None
    args: list[object] = []
    for expected, part in zip(pattern, parts, strict=True):
        if expected in _PARAMETERS:
            value = _PARAMETERS[expected](part)
            if value is None:
                return None
            args.append(value)
        elif expected != part:
            return None
    return args

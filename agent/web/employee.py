"""The employee's local page: consent per category with the full notice, pause, my data, batches, ledger.

Every action calls the same library functions as the CLI (``vault.consent_ops``, ``vault.batches``)
and then tells the agent, as ``consentry consent ...`` does; a grant needs the full notice on screen
and an explicit confirmation, and records the SHA-256 of exactly the text that was shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import ClassVar

from agent.web.mydata_view import mydata_body
from agent.words import counted
from kit.web.html import esc, flash, layout, post_form, state_badge, table
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
            return self._render(
                request, "/", f"<section>{flash(message + '; nothing was changed.', bad=True)}</section>", 409
            )
        return self._not_found(request)

    def _render(self, request: Request, here: str, body: str, status: int = 200) -> Response:
        return Response.html(layout(TITLE, body, request.nonce, nav=NAV, here=here), status)

    def _not_found(self, request: Request) -> Response:
        return self._render(request, "", f"<section>{flash('There is no such page here.', bad=True)}</section>", 404)

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

    def _done(self, request: Request) -> str:
        code = request.query.get("done", "")
        if code not in DONE:
            return ""
        who = _category(request.query.get("c", ""))
        return flash(DONE[code].format(c=who.value if who else "it"), bad=code in DONE_BAD)

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

    def _overview(self, request: Request) -> Response:
        policy = self._policy(strict=False)
        with self._vault() as vault:
            snapshot = vault.consent(policy)
            held = len(outbox.list_batches(vault, ("held",)))
            report = vault.ledger.verify(vault.device_key.public_bytes)
            head = vault.ledger_head_state()
        ledger = (
            f"{state_badge('ok')} Your consent ledger is intact: {counted(report.entries, 'entry', 'entries')}. "
            if report.ok
            else f"{state_badge('broken')} Your consent ledger is broken at entry {report.first_broken_seq}. "
        ) + '<a href="/ledger">See every entry</a>.'
        status = self._agent_status() or {}
        ledger += "".join(f'</p><p class="ledger-head">{line}' for line in _ledger_warnings(head, status))
        capture = status.get("categories") if isinstance(status.get("categories"), dict) else {}
        rows = []
        for category in ALL_CATEGORIES:
            state = snapshot.categories[category]
            now_state = (capture or {}).get(category.value, {}) if isinstance(capture, dict) else {}
            capturing = now_state.get("state", "unknown") if isinstance(now_state, dict) else "unknown"
            if status.get("agent_state") != "running":
                capturing = "agent not running"
            action = ""
            if _in_force(state.state):  # suspended and forbidden grants can be withdrawn too
                action = post_form(
                    f"/consent/{category.value}/revoke", request.csrf, f"Revoke {category.value}", css="danger"
                )
            if state.state != "granted" and policy.allows(category):
                action += f'<a href="/consent/{category.value}">Read the notice and decide</a>'
            elif not action:
                action = '<span class="muted">not offered by your company\'s policy</span>'
            rows.append(
                (
                    f'<a href="/consent/{category.value}">{esc(category.value)}</a>',
                    state_badge(state.state)
                    + (f'<br><span class="muted">{esc(state.reason)}</span>' if state.reason else ""),
                    esc(self._local(state.since)),
                    state_badge(str(capturing)),
                    action,
                )
            )
        paused = snapshot.paused_until
        now = self.clock()
        if snapshot.is_paused(now):
            until = "until you resume" if paused and paused.year >= 9999 else f"until {self._local(paused)}"
            pause_html = f"<p>{state_badge('paused')} All capture is paused {esc(until)}.</p>" + post_form(
                "/resume", request.csrf, "Resume capture", css="primary"
            )
        else:
            pause_html = (
                "<p>Pause all capture for a while (nothing is captured from any category while paused):</p>"
                + "".join(
                    post_form("/pause", request.csrf, label, fields={"for": code})
                    for code, label in (
                        ("15m", "Pause 15 min"),
                        ("1h", "Pause 1 hour"),
                        ("tomorrow", "Until tomorrow"),
                        ("resume", "Until I resume"),
                    )
                )
            )
        body = (
            self._done(request)
            + "<section><h2>Consent, per category</h2>"
            + "<p>Nothing is captured for a category until you grant it. Withdrawing is one click and stops capture at once.</p>"
            + table(("Category", "Your consent", "Since", "Capture now", ""), rows, raw=True)
            + "</section>"
            + f"<section><h2>Pause</h2>{pause_html}</section>"
            + f"<section><h2>Ledger</h2><p>{ledger}</p></section>"
            + f'<section><h2>Batches waiting for you</h2><p><a href="/batches">{counted(held, "batch", "batches")} in hold</a>: '
            + "preview what would leave this computer, veto or release it.</p></section>"
        )
        return self._render(request, "/", body)

    def _consent_page(self, request: Request, category: Category) -> Response:
        try:
            policy = self._policy(strict=True)
            policy_problem = None
        except PolicyError as exc:
            policy, policy_problem = MachinePolicy(), str(exc)
        notice, text = consent_ops.notice_shown(category, policy)
        with self._vault() as vault:
            state = vault.consent(policy).categories[category]
        parts = [self._done(request), f"<section><h2>{esc(category.value)}: {state_badge(state.state)}</h2>"]
        if state.reason:
            parts.append(f"<p>{esc(state.reason)}</p>")
        parts.append(_notice_html(consent_ops.notice_sections(category, policy), text))
        if _in_force(state.state):
            parts.append(
                "<p>You granted this on "
                + esc(self._local(state.since))
                + ". Withdrawing stops capture at once:</p>"
                + post_form(f"/consent/{category.value}/revoke", request.csrf, f"Revoke {category.value}", css="danger")
                + post_form(
                    "/erase",
                    request.csrf,
                    "Withdraw and erase…",
                    fields={"scope": "withdraw", "category": category.value},
                )
            )
        if state.state == "granted":
            pass
        elif policy_problem is not None:
            parts.append(flash(f"{policy_problem}. Granting is not possible until IT fixes the policy.", bad=True))
        elif not policy.allows(category):
            parts.append(flash("Your company's policy does not offer this category on this computer.", bad=True))
        else:
            folders = ""
            if category is Category.FILES:
                folders = (
                    '<label for="folders">Folders whose file activity may be counted (one per line; names are never stored):</label>'
                    '<textarea id="folders" name="folders" rows="3" required></textarea>'
                )
            parts.append(
                f'<form method="post" action="/consent/{category.value}/grant" id="grant-form">'
                f'<input type="hidden" name="csrf" value="{esc(request.csrf)}">'
                f'<input type="hidden" name="notice_sha256" value="{esc(consent_ops.notice_sha256(text))}">'
                f"{folders}"
                f'<label class="confirm"><input type="checkbox" name="confirm" value="yes" id="confirm" required> '
                f"I have read this notice (version {notice.version}) and I agree to the capture of "
                f"{esc(category.value)} activity as it describes.</label>"
                f'<button type="submit" class="primary" id="grant">Grant consent for {esc(category.value)}</button>'
                "</form>"
            )
        parts.append("</section>")
        return self._render(request, "/", "".join(parts))

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
        return self._render(request, "/", f"<section>{flash(message, bad=True)}</section>", 400)

    # -- my data ----------------------------------------------------------------------------------

    def _mydata(self, request: Request) -> Response:
        tz = self._local_tz()
        with self._vault() as vault:
            body = mydata_body(
                vault, request.query.get("day"), tz, self.clock().astimezone(tz).date(), query=request.query
            )
        return self._render(request, "/mydata", body)

    # -- batches ----------------------------------------------------------------------------------

    def _batches(self, request: Request) -> Response:
        with self._vault() as vault:
            infos = outbox.list_batches(vault)
        rows = []
        for info in reversed(infos):
            actions = (
                f'<a href="/batches/{info.batch_id}">Preview</a> ' if info.state in batch_ops.PENDING_STATES else ""
            )
            actions += self._batch_actions(request, info)
            rows.append(
                (
                    f'<span class="mono">{esc(info.batch_id)}</span>',
                    state_badge(info.state),
                    esc(_period(info.period_start, info.period_end, self._local_tz())),
                    esc(", ".join(f"{k} {v}" for k, v in info.record_counts.items())),
                    esc(self._local(parse_iso(info.hold_until)) if info.state == "held" else "-"),
                    actions,
                )
            )
        body = (
            self._done(request)
            + "<section><h2>Batches</h2><p>A batch is held for the policy's hold period. During it you can see exactly "
            "what would leave this computer, veto it (its data is destroyed) or release it early. After the hold, "
            "data stewards review its manifest; only approved batches are sent.</p>"
            + (
                table(("Batch", "State", "Period", "Records", "Held until", ""), rows, raw=True)
                if rows
                else "<p>No batches yet.</p>"
            )
            + "</section>"
        )
        return self._render(request, "/batches", body)

    def _batch_actions(self, request: Request, info: outbox.BatchInfo, *, explain: bool = False) -> str:
        out = ""
        if explain and info.state in ("held", "released"):
            out += (
                '<p class="muted">Veto: this batch never leaves and its data is destroyed. Release now: it goes '
                "to the data stewards' review at the next sync instead of at the end of the hold.</p>"
            )
        if info.state in ("held", "released"):
            out += post_form(f"/batches/{info.batch_id}/veto", request.csrf, "Veto", css="danger")
        if info.state == "held":
            out += post_form(f"/batches/{info.batch_id}/release", request.csrf, "Release now")
        return out

    def _batch(self, request: Request, batch_id: str) -> Response:
        from agent.web.record_view import receipt_link_rows, record_cell
        from vault.receipt_links import receipt_links

        with self._vault() as vault:
            info = outbox.get_batch(vault, batch_id)
            records = batch_ops.preview_records(vault, info)
            links = receipt_links(vault, batch_id)
            granted = {
                rid: (s.receipt.category.value, self._local(s.granted_at)) for rid, s in vault.receipt_spans().items()
            }
        cited = {r["receipt_id"]: links.get(r["receipt_id"]) for r in records}
        checks = [
            (state_badge("pass" if c.get("passed") else "fail"), esc(c.get("name", "")), esc(c.get("detail", "")))
            for c in info.privacy_checks
        ]
        tz = self._local_tz()
        rows = [
            (
                esc(datetime.fromtimestamp(int(r["start"]), tz).strftime("%Y-%m-%d %H:%M %Z")),
                esc(r["category"]),
                record_cell(r),
            )
            for r in records
        ]
        link_rows = receipt_link_rows(cited, granted)
        body = (
            f'<section><h2>Batch <span class="mono">{esc(batch_id)}</span> {state_badge(info.state)}</h2>'
            f"<p>{counted(sum(info.record_counts.values()), 'record')}, {esc(_period(info.period_start, info.period_end, tz))}. "
            f'Payload SHA-256 <span class="mono">{esc(info.payload_sha256)}</span>.</p>'
            + self._batch_actions(request, info, explain=True)
            + "</section><section><h2>Privacy checks</h2>"
            + table(("", "Check", "Detail"), checks, raw=True)
            + "</section><section><h2>Exactly what would leave this computer</h2>"
            + (
                table(("Window start", "Category", "What would leave"), rows, raw=True)
                if rows
                else "<p>This batch holds no data any more.</p>"
            )
            + "</section>"
            + (
                '<section id="receipt-links"><h2>Your consent, as this batch names it</h2><p>The batch names each '
                "of your grants by an alias for this period, so the store cannot link one period to another. "
                'Each alias is one of your own grants, listed under <a href="/mydata">My data</a>:</p>'
                + table(("Alias in the batch", "Your grant in My data", "Category", "Granted"), link_rows)
                + "</section>"
                if link_rows
                else ""
            )
        )
        return self._render(request, "/batches", body)

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
        if report.ok:
            verdict = (
                f"{state_badge('ok')} Intact: {counted(report.entries, 'entry', 'entries')}, every hash link and "
                "signed checkpoint checks out."
            )
        else:
            verdict = (
                f"{state_badge('broken')} Broken at entry {report.first_broken_seq}: {esc(report.reason)}. "
                "The vault was changed outside Consentry; keep a copy and tell your IT security contact."
            )
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
        body = (
            f'<section><h2>Consent ledger</h2><p id="ledger-verdict">{verdict}</p>'
            f'<p class="muted">Head: <span class="mono">{esc(report.head_hash)}</span></p></section>'
            "<section><h2>Latest entries</h2>"
            + table(("#", "When", "What", "About"), rows, numeric=(0,))
            + "</section>"
        )
        return self._render(request, "/ledger", body)

    def _erase(self, request: Request) -> Response:
        from agent.web import erase_view  # the erase choices, question and erasure: agent/web/erase_view.py

        return erase_view.handle(self, request)

    # -- the routes: (method, path segments, handler); a "{name}" segment is checked by _PARAMETERS,
    # and its value passed to the handler. Anything not listed is "There is no such page here."
    ROUTES: ClassVar[tuple[tuple[str, tuple[str, ...], Callable[..., Response]], ...]] = (
        ("GET", (), _overview),
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


def _ledger_warnings(head: HeadState, status: dict[str, object]) -> list[str]:
    """What the page says when the signed head lags or disagrees, or the store contradicts this ledger."""
    lines = []
    if not head.ok:
        lines.append(f"{state_badge('broken')} {esc(head.explain())}")
    elif head.lagging:
        lines.append(f"{state_badge('head_behind')} {esc(head.explain())}")
    witness = status.get("ledger_witness") if status.get("agent_state") == "running" else None
    if isinstance(witness, dict) and witness.get("state") not in (None, "confirmed", "not-configured"):
        lines.append(f"{state_badge('capture_stopped')} {esc(str(witness.get('message') or ''))}")
    return lines


def _notice_html(sections: tuple[consent_ops.Section, ...], exact: str) -> str:
    """The notice in plain sections, and the exact text a grant hashes one click away (``#notice``)."""
    parts = ['<div class="plain-notice" id="plain-notice">']
    for section in sections:
        paragraphs = "".join(f"<p>{esc(p)}</p>" for p in section.paragraphs)
        parts.append(
            f'<section class="notice-part" id="notice-{esc(section.key)}"><h3>{esc(section.title)}</h3>{paragraphs}</section>'
        )
    parts.append(
        '</div><details class="exact-notice"><summary>Show the exact text you agree to (your receipt records its '
        f'fingerprint)</summary><pre class="notice" id="notice">{esc(exact)}</pre></details>'
    )
    return "".join(parts)


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

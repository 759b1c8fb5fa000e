"""Exactly once across calls, processes and replicas: an identical write made again within a short window.

A client whose call failed without an answer (a dropped connection, a timeout, a replica that died) makes the same
call again, often through another replica. Each claimed write of a declared tool (`write_identity.claimed`: POSTs
and DELETEs) has an identity (`write_identity.identity`). Before it is sent its identity is claimed in the
`RepeatStore` — in Redis for a fleet, so every replica sees the same — and what the claim finds decides:
- `go`: nothing known: it is sent, marked in flight while it is;
- `done`: an identical call applied it less than `SYSTEME_REPEAT_WINDOW` seconds ago: answered `already_applied`
  with that call's result, not sent again;
- `busy`: an identical call is in flight (in this process, or in a replica that is alive): this one waits for it
  and then answers as the claim finds;
- `doubt`: an identical call may or may not have applied (its outcome was unknown, it was cancelled, or the
  replica sending it died): settled as a write in flight at a restart is (`calls.resume`): read back where
  declared, resent where a repeat is refused as "already", otherwise answered unknown, never sent twice.
A remembered result is forgotten as soon as a later write through this server touches one of its records (an id
it names or made): after delete_tag, an identical create_tag makes a new tag. Every write counts as touching
(`calls.execute`), bulk and import items included.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from . import calls, errors
from .calls import Outcome, OutcomeKind
from .catalog import Operation
from .config import Settings
from .runtime import CallContext
from .write_identity import Write, claimed, identity, touched_ids

log = logging.getLogger("systeme_mcp.repeats")
MAX_DATA_BYTES = 16_384  # a result larger than this is remembered without its data (the outcome alone)
HOLD_MARGIN = 5.0  # seconds an in-flight mark outlives its call's deadline
UNCLAIMED = Outcome(OutcomeKind.NOT_APPLIED)  # an unclaimed call's outcome until it sets its own (never recorded)
WAIT_FIRST, WAIT_MAX = 0.05, 0.5  # seconds between two looks at an identical call in flight


class Seen(StrEnum):
    """What claiming a write identity found (see the module doc)."""

    GO = "go"
    DONE = "done"
    BUSY = "busy"
    DOUBT = "doubt"


@dataclass(frozen=True)
class Claim:
    seen: Seen
    kind: str = ""  # DONE: the identical call's outcome (applied or already_applied)
    data: Any = None  # DONE: its result data
    age: float = 0.0  # DONE: seconds since it was applied


class RepeatStore(Protocol):
    """Where write identities are claimed and settled (memory: one process; Redis: a fleet)."""

    window: float

    async def claim(self, write: Write, holds_for: float) -> Claim:
        """What is known of `write`; unless BUSY or DONE it is now this call's, in flight for `holds_for` s."""

    async def peek(self, write: Write) -> Claim:
        """DONE with the result if an identical call applied it (and nothing since touched its records), else GO;
        claims nothing."""

    async def settle(self, write: Write, seen: Seen | None, ids: list[str], kind: str = "", data: Any = None) -> None:
        """DONE: remember the result (`kind`, `data`); DOUBT: it may have applied; None: not applied, forget it.
        `ids`: the records it touched (results naming them are forgotten; its own is kept)."""

    async def touch(self, scope: str, ids: list[str]) -> None:
        """A write touched these records: forget remembered results that name them."""

    async def serve(self, tg: TaskGroup) -> None: ...

    async def aclose(self) -> None: ...


class RepeatStateUnavailable(errors.SystemeError):
    """A write refused before it was sent: where identical writes are tracked (Redis) could not be reached."""

    code = "write_state_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def message(self) -> str:
        return (
            f"Refused: the shared write state is unavailable ({self.reason}), so nothing was sent. Writes wait for "
            "it so that a repeated call can never apply twice; reads still work. Retry once the store "
            "(SYSTEME_STORE) answers again."
        )


class InFlightElsewhere(errors.SystemeError):
    """An identical write is still being sent by another call (perhaps on another replica): this one was not."""

    code = "in_flight"

    def message(self) -> str:
        return (
            "An identical call is still in flight (on this server or another replica), so this one was not sent: it "
            "cannot apply twice. Make the call again in a moment: it answers with that call's result."
        )


class InDoubt(errors.SystemeError):
    """An identical earlier write may have applied and cannot be checked: this one was not sent."""

    code = "in_doubt"

    def __init__(self, op: Operation, window: float) -> None:
        super().__init__(op.name)
        self.hint, self.window = op.unknown_hint, window

    def message(self) -> str:
        check = f" {self.hint}" if self.hint else " Read the record to check before repeating it."
        return (
            "An identical call made moments ago may or may not have been applied (its answer was lost, or the "
            "server sending it stopped), and this operation cannot be read back to tell; it was not sent again, "
            f"so it cannot apply twice.{check} An identical call is sent as new {self.window:g} s after the first "
            "(SYSTEME_REPEAT_WINDOW)."
        )


def kept(data: Any) -> Any:
    """The result data worth remembering (None past MAX_DATA_BYTES)."""
    return data if len(json.dumps(data, default=str)) <= MAX_DATA_BYTES else None


class MemoryRepeats:
    """The identities of one process (memory and SQLite stores): the same rules, with no other replica to see."""

    def __init__(self, window: float, clock: Callable[[], float]) -> None:
        self.window, self._clock = window, clock
        self._marks: dict[str, dict[str, Any]] = {}
        self._gens: dict[str, tuple[int, float]] = {}  # a record's counter, and when it was last touched
        self._every = max(window / 4, 1.0)  # seconds between two sweeps of either
        self._next_prune = self._next_forget = 0.0

    def tracked(self) -> int:
        """How many marks and record counters it keeps."""
        return len(self._marks) + len(self._gens)

    def _gen(self, name: str) -> int:
        return self._gens.get(name, (0, 0.0))[0]

    def _prune(self, now: float) -> None:
        """Drop what has expired, now and then: marks past their window (on claims and peeks: only claims add
        marks), and counters (`_forget`)."""
        if now >= self._next_prune:
            self._next_prune = now + self._every
            self._marks = {k: m for k, m in self._marks.items() if m["expires"] > now}
        self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop counters untouched for two windows, now and then (also on touches: every write adds counters, and
        one that claims nothing never prunes). As in Redis, a counter outlives every mark that recorded it, so no
        mark can see one start again."""
        if now >= self._next_forget:
            self._next_forget = now + self._every
            self._gens = {k: g for k, g in self._gens.items() if g[1] > now - 2 * self.window}

    def _done(self, write: Write) -> Claim | None:
        now = self._clock()
        self._prune(now)
        mark = self._marks.get(write.key)
        if mark is not None and mark["expires"] <= now:
            del self._marks[write.key]
            mark = None
        if mark is None or mark["state"] != "done":
            return None
        if all(self._gen(name) == n for name, n in mark["gens"]):
            return Claim(Seen.DONE, mark["kind"], mark["data"], now - mark["at"])
        del self._marks[write.key]  # a later write touched its records
        return None

    async def peek(self, write: Write) -> Claim:
        return self._done(write) or Claim(Seen.GO)

    async def claim(self, write: Write, holds_for: float) -> Claim:
        found = self._done(write)
        if found is not None:
            return found
        now, mark = self._clock(), self._marks.get(write.key)
        if mark is not None and mark["state"] == "flying" and now < mark["until"]:
            return Claim(Seen.BUSY)
        until = now + holds_for + HOLD_MARGIN
        expires = now + self.window if mark is None else max(mark["expires"], until)
        self._marks[write.key] = {"state": "flying", "until": until, "expires": expires}
        return Claim(Seen.GO if mark is None else Seen.DOUBT)

    async def settle(self, write: Write, seen: Seen | None, ids: list[str], kind: str = "", data: Any = None) -> None:
        await self.touch(write.scope, ids)
        mark = self._marks.get(write.key)
        if mark is None:
            return
        if seen is None:
            del self._marks[write.key]
        elif seen is Seen.DOUBT:
            mark["state"] = "doubt"
        else:
            now, gens = self._clock(), [(f"{write.scope}:{i}", self._gen(f"{write.scope}:{i}")) for i in ids]
            mark.update(state="done", kind=kind, data=kept(data), at=now, gens=gens, expires=now + self.window)

    async def touch(self, scope: str, ids: list[str]) -> None:
        now = self._clock()
        self._forget(now)
        for i in ids:
            self._gens[f"{scope}:{i}"] = (self._gen(f"{scope}:{i}") + 1, now)

    async def serve(self, tg: TaskGroup) -> None:
        return None

    async def aclose(self) -> None:
        return None


def open_repeats(
    settings: Settings, clock: Callable[[], float], redis: Any = None, replica: str | None = None
) -> RepeatStore:
    """The repeat store beside `settings`' job store: in Redis for a fleet (on the process's shared client
    `redis`), else this process's."""
    if redis is not None:
        from .repeats_redis import RedisRepeats  # imported here: only a Redis store needs it (and redis-py)

        return RedisRepeats(settings.store_url, settings.repeat_window, redis=redis, replica=replica)
    return MemoryRepeats(settings.repeat_window, clock)


def secret_of(settings: Settings) -> bytes:
    """The key identities are hashed under, the same on every replica: SYSTEME_TENANT_SECRET where set (it never
    changes), else the state ring's sealing key (rotating it makes identities new: a retry that straddles the
    rotation is settled by reading back, not from the store), else one made for this process."""
    if settings.tenant_secret is not None:
        return b"repeats\x00" + settings.tenant_secret.get_secret_value().encode()
    keys = settings.state_keys
    return keys[0].encode() if keys else secrets.token_bytes(32)


class Ticket:
    """One declared call's claim on its write identity (`claim`). `answer`: the call is answered without sending
    (an identical one applied, is still in flight, or the store is down). Otherwise the call sends it (or, `doubt`,
    settles it with `recover`) and sets `outcome`; leaving the `async with` block records that outcome, even when
    the call is cancelled (then: in doubt). `active` false: not claimed (an idempotent write, or the window 0)."""

    def __init__(self, ctx: CallContext, op: Operation, args: dict[str, Any], write: Write | None) -> None:
        self.ctx, self.op, self.args, self.write = ctx, op, args, write
        self.answer: Outcome | None = None
        self.doubt = False
        # until the call sets it (cancelled before: in doubt); unclaimed, nothing records it
        self.outcome = self.unsettled if write is not None else UNCLAIMED

    @functools.cached_property
    def unsettled(self) -> Outcome:
        """The outcome of a claimed call that ends before it knows its own: in doubt."""
        return Outcome(OutcomeKind.UNKNOWN, error=InDoubt(self.op, self.ctx.runtime.repeats.window))

    @property
    def active(self) -> bool:
        return self.write is not None and self.answer is None

    async def recover(self) -> Outcome:
        """Settle an identical write in doubt (see the module doc): never sent twice."""
        outcome = await calls.resume(self.ctx, self.op, self.args, found=OutcomeKind.ALREADY_APPLIED)
        if outcome.kind == OutcomeKind.UNKNOWN and outcome.error is None:  # nothing could tell: it was not sent
            outcome = Outcome(OutcomeKind.UNKNOWN, error=InDoubt(self.op, self.ctx.runtime.repeats.window))
        return outcome

    async def __aenter__(self) -> Ticket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.active:
            return
        assert self.write is not None
        outcome, store = self.outcome, self.ctx.runtime.repeats
        seen = {OutcomeKind.NOT_APPLIED: None, OutcomeKind.UNKNOWN: Seen.DOUBT}.get(outcome.kind, Seen.DONE)
        ids = touched_ids(self.ctx.catalog, self.op, self.args, outcome.data)
        with anyio.CancelScope(shield=True):  # a cancelled call leaves its identity in doubt, never free
            try:
                await store.settle(self.write, seen, ids, outcome.kind.value, outcome.data)
            except RepeatStateUnavailable as exc:  # settled either way; an identical call reads back first
                log.warning("%s: could not record its outcome (%s)", self.op.name, exc.reason)


async def repeated(ctx: CallContext, op: Operation, args: dict[str, Any]) -> Outcome | None:
    """The answer of an identical call that applied `op` with `args` within the window, if there is one (before a
    question to the user: a retry of a delete that was done is not asked again, nor refused as not found)."""
    store: RepeatStore = ctx.runtime.repeats
    if store.window <= 0 or not claimed(op):
        return None
    try:
        found = await store.peek(identity(ctx.runtime.repeat_secret, ctx.runtime.account, op, args))
    except RepeatStateUnavailable as exc:
        return Outcome(OutcomeKind.NOT_APPLIED, error=exc)
    return Outcome(OutcomeKind.ALREADY_APPLIED, found.data, repeat_of=found.age) if found.seen is Seen.DONE else None


async def claim(ctx: CallContext, op: Operation, args: dict[str, Any]) -> Ticket:
    """Claim the identity of a declared call of `op` with `args` (see the module doc and `Ticket`)."""
    store: RepeatStore = ctx.runtime.repeats
    if store.window <= 0 or not claimed(op):
        return Ticket(ctx, op, args, None)
    ticket = Ticket(ctx, op, args, identity(ctx.runtime.repeat_secret, ctx.runtime.account, op, args))
    assert ticket.write is not None
    holds_for = ctx.client.call_deadline
    try:
        found = await store.claim(ticket.write, holds_for)
        wait = WAIT_FIRST
        with anyio.move_on_after(holds_for):
            while found.seen is Seen.BUSY:
                await anyio.sleep(wait)
                wait = min(wait * 2, WAIT_MAX)
                found = await store.claim(ticket.write, holds_for)
    except RepeatStateUnavailable as exc:
        ticket.answer = Outcome(OutcomeKind.NOT_APPLIED, error=exc)
        return ticket
    if found.seen is Seen.BUSY:
        ticket.answer = Outcome(OutcomeKind.NOT_APPLIED, error=InFlightElsewhere())
    elif found.seen is Seen.DONE:
        ticket.answer = Outcome(OutcomeKind.ALREADY_APPLIED, found.data, repeat_of=found.age)
    ticket.doubt = found.seen is Seen.DOUBT
    return ticket

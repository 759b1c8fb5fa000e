"""`--state FILE`: the sandbox's state in an SQLite database (WAL), written a few rows per request.

Schema (`PRAGMA application_id` = `APPLICATION_ID`, `user_version` = `SCHEMA_VERSION`):

    rows(kind TEXT, key TEXT, data TEXT, PRIMARY KEY (kind, key))

One row per entity: `kind` is a store table (`contacts`, `tags`, ...), `key` its id (slug for `fields`) and
`data` the entity as a JSON object; kind `meta` holds `counters` and `twilio`. Rows are read back in rowid
order, which is the tables' creation order. After each request only the rows it changed are written, in one
transaction (`write_changes`); `write_all` rewrites every row (a reset, `Sandbox.persist()`, a new file).
A kill -9 loses at most the request being answered; the `-wal`/`-shm` files it leaves are recovered on the
next open. A state file in the old JSON format (`{"contacts": [...], ...}`) is migrated once, in place; the
original is kept next to it as `FILE.json-backup`.

Anything unusable (not SQLite, another schema, a row that does not parse or has the wrong types) raises
`StateFileError`, one line naming the file and the problem. Strings are made valid Unicode on the way in.

References an answer follows are checked too (an enrollment's contact and course, a membership's community, a
contact's tags). Not modelled: several sandboxes sharing one file (each keeps its own copy in memory, and
each writes its own changes), the other references (a subscription's contact, a module's course).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sqlite3
import types
import typing
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .store import TABLES, Store
from .validation import valid_text

log = logging.getLogger("systeme_mcp.sandbox")

APPLICATION_ID = 0x53594D43  # "SYMC"
SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
SCHEMA = "CREATE TABLE rows (kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key))"
UPSERT = "INSERT INTO rows VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data"
DELETE = "DELETE FROM rows WHERE kind = ? AND key = ?"
META = ("counters", "twilio")

Row = tuple[str, str, str | None, Any]  # (kind, where, stored key or None, parsed data)


class StateFileError(ValueError):
    """A state file that cannot be used; the message (one line) names the file and what is wrong."""


class StateFile:
    """An open state file. `load()` the store it holds (None when new), then write to it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._meta: dict[str, str] = {}  # the meta rows as last written
        try:
            head = _head(self.path)
            if head and not head.startswith(SQLITE_MAGIC):
                self._migrate(head)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)  # see Sandbox._lock
            self._close = weakref.finalize(self, self._db.close)
            self._check_schema()
            self._db.execute("PRAGMA synchronous = NORMAL")  # with WAL: a commit survives a crash of the process
        except (OSError, sqlite3.Error, ValueError, RecursionError) as exc:
            if hasattr(self, "_close"):
                self._close()
            raise self.error(exc) from None

    def error(self, problem: object) -> StateFileError:
        text = " ".join(str(problem).split()) or type(problem).__name__
        return StateFileError(f"state file {self.path}: {text}")

    def close(self) -> None:
        self._close()

    # ------------------------------------------------------------------ reading
    def load(self) -> Store | None:
        """The stored state, or None when the file holds none yet (closes the file if it is unusable)."""
        try:
            rows = self._db.execute("SELECT kind, key, data FROM rows ORDER BY rowid").fetchall()
            if not rows:
                return None
            store = build(_parsed(kind, key, data) for kind, key, data in rows)
        except (sqlite3.Error, ValueError, RecursionError) as exc:
            self.close()
            raise self.error(exc) from None
        self._meta = {name: _dump(getattr(store, name)) for name in META}
        return store

    def _check_schema(self) -> None:
        db = self._db
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if not tables and app_id == 0 and version == 0:  # a new (or empty) file
            db.execute("PRAGMA journal_mode = WAL")
            with self._transaction():
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute(SCHEMA)
            return
        if app_id != APPLICATION_ID:
            found = f"application_id {app_id}, tables {tables}"
            raise ValueError(f"an SQLite database but not a sandbox state file ({found})")
        if version != SCHEMA_VERSION:
            raise ValueError(f"schema version {version}, but this sandbox reads version {SCHEMA_VERSION}")
        columns = [r[1] for r in db.execute("PRAGMA table_info(rows)")]
        if columns != ["kind", "key", "data"]:
            raise ValueError(f"wrong schema: table 'rows' has columns {columns}, expected ['kind', 'key', 'data']")
        db.execute("PRAGMA journal_mode = WAL")

    def _migrate(self, head: bytes) -> None:
        """Convert an old JSON state file into an SQLite one at the same path (the JSON is kept as a backup)."""
        if not head.lstrip().startswith(b"{"):
            raise ValueError("not a sandbox state file (neither SQLite nor the old JSON format)")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"an old JSON state file that is not valid JSON ({exc})") from None
        store = build(_json_rows(data))
        backup = self.path.with_name(self.path.name + ".json-backup")
        shutil.copyfile(self.path, backup)
        temp = self.path.with_name(self.path.name + ".migrating")
        for leftover in (temp, *(temp.with_name(temp.name + end) for end in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)  # from a migration that was killed
        converted = StateFile(temp)
        converted.write_all(store)
        converted.close()
        os.replace(temp, self.path)
        log.warning("state file %s: migrated from the old JSON format (the JSON is kept as %s)", self.path, backup)

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def write_changes(self, store: Store) -> None:
        """Write the rows changed since the last write, in one transaction (nothing when nothing changed)."""
        plans = [(name, table, *table.pending()) for name, table in store.tables() if table.changed]
        meta = {name: text for name in META if (text := _dump(getattr(store, name))) != self._meta.get(name)}
        if not plans and not meta:
            return
        with self._transaction() as db:
            for name, table, gone, kept in plans:
                db.executemany(DELETE, [(name, str(key)) for key in gone])
                db.executemany(UPSERT, [(name, str(key), _entity_json(table[key])) for key in kept])
            db.executemany(UPSERT, [("meta", name, text) for name, text in meta.items()])
        for _, table, _, _ in plans:
            table.saved()
        self._meta.update(meta)

    def write_all(self, store: Store) -> None:
        """Replace every row with the state of `store`, in one transaction."""
        meta = {name: _dump(getattr(store, name)) for name in META}
        with self._transaction() as db:
            db.execute("DELETE FROM rows")
            for name, table in store.tables():
                db.executemany(UPSERT, [(name, str(key), _entity_json(e)) for key, e in table.items()])
            db.executemany(UPSERT, [("meta", name, text) for name, text in meta.items()])
        store.saved()
        self._meta = meta


def _head(path: Path) -> bytes:
    """The first bytes of the file (empty when there is no file)."""
    if not path.exists():
        return b""
    with path.open("rb") as handle:
        return handle.read(16)


def _dump(value: Any) -> str:
    # ASCII JSON: a stray lone surrogate is written as an escape (and healed when read) instead of failing
    return json.dumps(value, separators=(",", ":"))


def _entity_json(entity: Any) -> str:
    return _dump(dataclasses.asdict(entity))


# ---------------------------------------------------------------------------- rows → store
def _parsed(kind: str, key: str, data: str) -> Row:
    where = f"row {kind}/{key}"
    try:
        return kind, where, key, json.loads(data)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"{where}: data is not JSON ({exc})") from None


def _json_rows(data: Any) -> Iterator[Row]:
    """The rows of an old JSON state file (`Store.to_json()`)."""
    if not isinstance(data, dict):
        raise ValueError(f"an old JSON state file must hold an object, not {_shown(data)}")
    unknown = sorted(set(data) - set(TABLES) - set(META))
    if unknown:
        raise ValueError(f"old JSON state file: unknown key {unknown[0]!r}")
    for name in TABLES:
        rows = data.get(name, [])
        if not isinstance(rows, list):
            raise ValueError(f"old JSON state file: {name!r} must be a list, not {_shown(rows)}")
        for i, row in enumerate(rows):
            yield name, f"{name}[{i}]", None, row
    for name in META:
        if name in data:
            yield "meta", name, name, data[name]


def build(rows: Iterable[Row]) -> Store:
    """A store from parsed rows, every one checked against its dataclass (ValueError names the bad row)."""
    store = Store()
    for kind, where, key, value in rows:
        value = valid_text(value)  # heals lone surrogates written by older versions
        if kind == "meta":
            _set_meta(store, where, key, value)
            continue
        if kind not in TABLES:
            raise ValueError(f"{where}: unknown kind {kind!r}")
        entity = _entity(TABLES[kind], value, where)
        own = entity.slug if kind == "fields" else entity.id
        table = getattr(store, kind)
        if key is not None and str(own) != key:
            raise ValueError(f"{where}: the row's key {key!r} is not the id of its data ({own!r})")
        if own in table:
            raise ValueError(f"{where}: a second entity with id {own!r}")
        table[own] = entity
    _check_references(store)
    store.saved()
    return store


# (table, field, table it names): the references an answer follows (a dangling one would be a 500 on every read)
REFERENCES = (
    ("enrollments", "contact_id", "contacts"),
    ("enrollments", "course_id", "courses"),
    ("memberships", "community_id", "communities"),
    ("contacts", "tag_ids", "tags"),
)


def _check_references(store: Store) -> None:
    for kind, name, target in REFERENCES:
        known = getattr(store, target)
        for key, entity in getattr(store, kind).items():
            value = getattr(entity, name)
            missing = [v for v in (value if isinstance(value, list) else [value]) if v not in known]
            if missing:
                raise ValueError(f"{kind}/{key}: {name} refers to {target}/{missing[0]}, which does not exist")


def _set_meta(store: Store, where: str, key: str | None, value: Any) -> None:
    if key == "counters":
        if not _conforms(value, dict[str, int]):
            raise ValueError(f"{where}: must map table names to integers, not {_shown(value)}")
        store.counters = dict(value)
    elif key == "twilio":
        if not isinstance(value, dict):
            raise ValueError(f"{where}: must be an object, not {_shown(value)}")
        store.twilio = value
    else:
        raise ValueError(f"{where}: unknown meta row {key!r}")


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _entity(kind: type[Any], value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object, got {_shown(value)}")
    hints = _HINTS.get(kind) or _HINTS.setdefault(kind, typing.get_type_hints(kind))
    for f in dataclasses.fields(kind):
        if f.name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing field {f.name!r}")
        elif not _conforms(value[f.name], hints[f.name]):
            raise ValueError(f"{where}: field {f.name!r} should be {_hint(hints[f.name])}, got {_shown(value[f.name])}")
    extra = sorted(set(value) - set(hints))
    if extra:
        raise ValueError(f"{where}: unknown field {extra[0]!r}")
    return kind(**value)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether parsed JSON `value` fits the annotation `hint` (the few forms the store's dataclasses use)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint in (int, float):  # JSON has one number type: a float field takes an integer too
        return isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_conforms(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        keys, values = args
        return isinstance(value, dict) and all(_conforms(k, keys) and _conforms(v, values) for k, v in value.items())
    return False


def _hint(hint: Any) -> str:
    return hint.__name__ if hint in (int, float, str, bool) else str(hint).replace("typing.", "")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""`Table`: a store table that remembers what changed, so persistence writes only the changed rows.

Setting and deleting keys are noticed on their own (every dict mutator goes through `__setitem__` or
`__delitem__`); an entity changed in place is noted with `touch(key)` (`Store.edit` does it).
"""

from __future__ import annotations

from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Table(dict[K, V]):
    """A dict (creation order) that remembers the keys set, deleted or `touch`ed since the last `saved()`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.changed: dict[K, None] = {}  # ordered sets: the keys changed, and those new, since the last save
        self.added: dict[K, None] = {}
        self.update(*args, **kwargs)

    def __setitem__(self, key: K, value: V) -> None:
        if key not in self:
            self.added[key] = None
        super().__setitem__(key, value)
        self.changed[key] = None

    def __delitem__(self, key: K) -> None:
        super().__delitem__(key)
        self.added.pop(key, None)
        self.changed[key] = None

    def touch(self, key: K) -> None:
        """Note that the entity at `key` was changed in place."""
        self.changed[key] = None

    def pop(self, key: K, *default: Any) -> Any:
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        value = self[key]
        del self[key]
        return value

    def popitem(self) -> tuple[K, V]:
        if not self:
            raise KeyError("popitem(): table is empty")
        key = next(reversed(self))
        return key, self.pop(key)

    def setdefault(self, key: K, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Table[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        for key in list(self):
            del self[key]

    def pending(self) -> tuple[list[K], list[K]]:
        """(keys whose rows go, keys whose rows are written, in this order) to bring the saved rows up to date.

        Keys added since the last save are written last, in insertion order, after their old rows (if any) went:
        rows are read back in the order they were written, which must be the tables' creation order."""
        gone = [k for k in self.changed if k not in self or k in self.added]
        kept = [k for k in self.changed if k in self and k not in self.added]
        return gone, kept + list(self.added)

    def saved(self) -> None:
        """Forget the changes (they are written)."""
        self.changed.clear()
        self.added.clear()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (and copied) with its changes: dict's own way sets the keys through `__setitem__` before the
        instance has its attributes."""
        return _restored, (dict(self), dict(self.changed), dict(self.added))


def _restored(items: dict[Any, Any], changed: dict[Any, None], added: dict[Any, None]) -> Table[Any, Any]:
    table: Table[Any, Any] = Table.__new__(Table)
    dict.update(table, items)  # dict's own: the keys are not noted as changed again
    table.changed, table.added = changed, added
    return table

"""The restricted HTML a Systeme.io newsletter body keeps, checked before sending.

Systeme.io stores `bodyHtml` as a TipTap fragment and silently drops whatever its schema does not know
(reference §1.10, single source). So that nothing vanishes unnoticed, `problems()` lists every tag,
attribute and substitution that would be dropped, with its line/column and the fix.

Kept (per the reference): top-level p, h2-h4, ul, ol, figure; inline span, strong, em, u, s, a, br inside
a text block; li inside lists; the substitutions {email}, {first_name}, {surname}.
Assumed (the reference is silent): li may hold p and nested lists, figure holds img and figcaption,
attributes kept are `style` (text colour, alignment), a[href, target, rel] and img[src, alt, title, width,
height]; everything else (class, id, on*, data-*) is dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCKS = frozenset({"p", "h2", "h3", "h4", "ul", "ol", "figure"})
TEXT_BLOCKS = frozenset({"p", "h2", "h3", "h4", "figcaption"})
INLINE = frozenset({"span", "strong", "em", "u", "s", "a", "br"})
VOID = frozenset({"br", "img"})
LISTS = frozenset({"ul", "ol"})
SUBSTITUTIONS = ("{email}", "{first_name}", "{surname}")
ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "target", "rel", "style"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
}
DEFAULT_ATTRIBUTES = frozenset({"style"})
INSTEAD = {
    "b": "strong",
    "i": "em",
    "strike": "s",
    "del": "s",
    "h1": "h2",
    "h5": "h4",
    "h6": "h4",
    "div": "p",
    "section": "p",
    "font": "span",
}
SUBSTITUTION_LIKE = re.compile(r"\{\{?\s*[A-Za-z_][\w.]*\s*\}?\}|\[[A-Za-z_]\w*\]|%[A-Za-z_]\w*%")
SUBSTITUTION_INSTEAD = {
    "firstname": "{first_name}",
    "first_name": "{first_name}",
    "name": "{first_name}",
    "last_name": "{surname}",
    "lastname": "{surname}",
    "surname": "{surname}",
    "email": "{email}",
}
MAX_PROBLEMS = 12


def _allowed_children(parent: str | None) -> frozenset[str]:
    """Which tags may open directly inside `parent` (None: the top level)."""
    if parent is None:
        return BLOCKS
    if parent in LISTS:
        return frozenset({"li"})
    if parent == "li":
        return INLINE | frozenset({"p", "ul", "ol"})
    if parent == "figure":
        return frozenset({"img", "figcaption"})
    if parent in TEXT_BLOCKS or parent in INLINE:
        return INLINE - {"a"} if parent == "a" else INLINE
    return frozenset()


def _where(parent: str | None) -> str:
    if parent is None:
        return "at the top level (allowed there: p, h2, h3, h4, ul, ol, figure)"
    if parent in LISTS:
        return f"directly inside <{parent}> (only li)"
    if parent == "figure":
        return "inside <figure> (only img, figcaption)"
    return f"inside <{parent}>"


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []  # open tags that are kept
        self.dropped_depth = 0  # >0 inside a dropped script/style (its content goes too: reported once)
        self.unwrapped: list[str] = []  # open dropped tags whose content stays (not reported again)
        self.problems: list[str] = []

    def _at(self) -> str:
        line, col = self.getpos()
        return f"line {line} col {col + 1}"

    def _add(self, text: str) -> None:
        self.problems.append(f"{self._at()}: {text}")

    def _parent(self) -> str | None:
        return self.stack[-1] if self.stack else None

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], *, closed: bool) -> None:
        parent = self._parent()
        if self.dropped_depth:
            if tag not in VOID and not closed:
                self.dropped_depth += 1
            return
        if tag not in _allowed_children(parent):
            known = BLOCKS | INLINE | {"li", "img", "figcaption"}
            if tag in INSTEAD:
                fix = f"use <{INSTEAD[tag]}>"
            elif tag in known:
                fix = "not allowed " + _where(parent)
            else:
                fix = "tag not supported"
            if tag in INLINE and parent is None:
                fix = "inline tags must sit inside <p>, <h2>-<h4> or <li>; wrap it in <p>"
            self._add(f"<{tag}> would be dropped ({fix}).")
            if tag in ("script", "style"):
                self.dropped_depth = 1 if not closed else 0
            elif tag not in VOID and not closed:
                self.unwrapped.append(tag)
            return
        keep = ATTRIBUTES.get(tag, DEFAULT_ATTRIBUTES)
        for name, _ in attrs:
            if name not in keep:
                kept = ", ".join(sorted(keep))
                self._add(f'attribute {name}="…" on <{tag}> would be dropped (kept on <{tag}>: {kept}).')
        if tag not in VOID and not closed:
            self.stack.append(tag)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, closed=True)

    def handle_endtag(self, tag: str) -> None:
        if self.dropped_depth:
            self.dropped_depth -= 1
            return
        if self.unwrapped and self.unwrapped[-1] == tag:
            self.unwrapped.pop()
        elif tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self.dropped_depth:
            return
        if not self.stack and not self.unwrapped and data.strip():
            snippet = " ".join(data.split())
            snippet = snippet if len(snippet) <= 40 else snippet[:40] + "…"
            self._add(f'text "{snippet}" is outside any block; wrap it in <p>.')
        for match in SUBSTITUTION_LIKE.finditer(data):
            token = match.group(0)
            if token in SUBSTITUTIONS:
                continue
            name = token.strip("{}[]% ").lower()
            better = SUBSTITUTION_INSTEAD.get(name)
            fix = f"write {better}" if better else "only " + ", ".join(SUBSTITUTIONS) + " are substituted"
            self._add(f"substitution {token} would not be replaced ({fix}).")

    def handle_comment(self, data: str) -> None:
        self._add("an HTML comment would be dropped.")

    def handle_decl(self, decl: str) -> None:
        self._add(f"<!{decl.split()[0] if decl.split() else ''}> would be dropped (send a fragment, not a page).")


def problems(html: str) -> list[str]:
    """Everything in `html` Systeme.io would drop or not substitute, one line each (empty: all kept)."""
    checker = _Checker()
    checker.feed(html)
    checker.close()
    found = checker.problems
    if len(found) > MAX_PROBLEMS:
        found = [*found[:MAX_PROBLEMS], f"… and {len(found) - MAX_PROBLEMS} more."]
    return found


def check(html: str) -> str:
    """`html` unchanged if everything in it is kept; else ValueError naming what would be dropped."""
    found = problems(html)
    if found:
        raise ValueError("Systeme.io would silently drop parts of this body: " + " ".join(found))
    return html

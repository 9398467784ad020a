"""Path templates (`/v1/orders/{id}/captures`) matched by segment in a tree, not by one regex
per template in turn.

Starlette's router and the fault middleware's operation index both answered "which template
matches this path?" by trying every template's regex in order: five regexes for
GET /v1/checkouts/{id}, up to ~140 for a control-plane path. The tree finds the same answer
in one walk over the path's segments: the entry listed first among those whose template
matches and whose methods include the request's, as the ordered scan would.

One quirk of the regexes is not reproduced: `$` also matches before a final newline, so
`^/v1/orders$` matches "/v1/orders\\n". `match` answers `UNSURE` for a path with a newline,
and the callers ask their regexes then, so every path gets the answer it got before.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

T = TypeVar("T")
CACHED = 1024  # answers kept
CACHED_PATH = 160  # characters: longer paths are not kept


class _Unsure:
    """`match`'s answer for a path the tree cannot decide (see the module docstring)."""


UNSURE: Final = _Unsure()


@dataclass
class _Node(Generic[T]):
    literal: dict[str, _Node[T]] = field(default_factory=dict)
    param: _Node[T] | None = None
    # (position in the list, methods, value, the names of the template's parameters)
    ends: list[tuple[int, frozenset[str], T, tuple[str, ...]]] = field(default_factory=list)


def segments(template: str) -> list[str | None] | None:
    """The template's segments, None for a `{name}` parameter; None when the template has
    anything the tree does not model (a parameter inside a segment, a `{name:type}`)."""
    parts: list[str | None] = []
    for part in template.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if not name.isidentifier():
                return None
            parts.append(None)
        elif "{" in part or "}" in part:
            return None
        else:
            parts.append(part)
    return parts


def names(template: str) -> tuple[str, ...]:
    return tuple(p[1:-1] for p in template.split("/") if p.startswith("{"))


class PathTable(Generic[T]):
    """Templates with their methods and a value each, matched in list order."""

    def __init__(self, entries: Iterable[tuple[str, Collection[str], T]]) -> None:
        self._root: _Node[T] = _Node()
        for index, (template, methods, value) in enumerate(entries):
            parts = segments(template)
            if parts is None:
                raise ValueError(f"not a plain path template: {template}")
            node = self._root
            for part in parts:
                if part is None:
                    node.param = node.param or _Node()
                    node = node.param
                else:
                    node = node.literal.setdefault(part, _Node())
            node.ends.append((index, frozenset(methods), value, names(template)))

        # The answers for the paths seen last (a client polls the same objects); short paths
        # only, so that the cache stays small whatever paths are sent.
        self._cached = functools.lru_cache(maxsize=CACHED)(self._match)

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | _Unsure | None:
        """The first entry that matches `method` and `path`, with the path's parameters (a
        dict the caller must not change: the answer may be cached)."""
        if len(path) <= CACHED_PATH:
            return self._cached(method, path)
        return self._match(method, path)

    def _match(self, method: str, path: str) -> tuple[T, dict[str, str]] | _Unsure | None:
        if "\n" in path:
            return UNSURE
        parts = path.split("/")
        best: tuple[int, T, tuple[str, ...]] | None = None
        values: list[str] = []
        # Depth first over (node, segment index, the parameters' values so far).
        stack: list[tuple[_Node[T], int, list[str]]] = [(self._root, 0, values)]
        count = len(parts)
        found_values = values
        while stack:
            node, i, got = stack.pop()
            if i == count:
                for index, methods, value, keys in node.ends:
                    if method in methods and (best is None or index < best[0]):
                        best, found_values = (index, value, keys), got
                        break  # `ends` is in list order
                continue
            part = parts[i]
            child = node.literal.get(part)
            if child is not None:
                stack.append((child, i + 1, got))
            if node.param is not None and part:
                stack.append((node.param, i + 1, [*got, part]))
        if best is None:
            return None
        return best[1], dict(zip(best[2], found_values, strict=True))

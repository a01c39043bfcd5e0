"""Policy variables: ``${key}``, ``${key, 'default'}`` and the literals ``${*}``/``${?}``/``${$}``.

Variables exist only in policies with ``"Version": "2012-10-17"``; in older or version-less
policies ``${...}`` is plain text. A policy value containing variables is parsed once into a
:class:`Template`; each evaluation resolves it against the request context.

Resolved text is always *literal*: a tag value of ``a*`` substituted into ``StringLike`` matches
only ``a*``, never ``abc``. The same holds for the ``${*}`` family, which exists precisely to
write a literal wildcard character.

A variable is unresolved when its key is absent (and it has no default) or when the key is
multivalued; callers treat an unresolved template as matching nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from iam.matching import Token, glob_tokens, literal_tokens, normalise_tokens

ContextValue = str | Sequence[str]

_VARIABLE = re.compile(r"\$\{([^{}]*)\}")
_KEY_WITH_DEFAULT = re.compile(r"\s*([^\s,'{}$]+)\s*(?:,\s*'([^']*)'\s*)?")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True, slots=True)
class Var:
    """A reference to a context key (stored lower-cased: keys are case-insensitive)."""

    key: str
    default: str | None = None

    def lookup(self, context: Mapping[str, ContextValue]) -> str | None:
        value = context.get(self.key)
        if value is None:
            return self.default
        if isinstance(value, str):
            return value
        return None  # multivalued keys cannot be variables


@dataclass(frozen=True, slots=True)
class Lit:
    """Text that came from ``${*}``-style escapes: it matches itself only."""

    text: str


Piece = str | Var | Lit


class Template:
    """Policy text with variables. Plain ``str`` pieces keep their wildcard meaning.

    Resolution first collects the variables' values; the compiled matcher for each distinct
    combination of values is remembered, so a template costs one dict lookup per evaluation
    once warm.
    """

    __slots__ = ("_matchers", "pieces", "source", "variables")

    _CACHE_LIMIT = 1024

    def __init__(self, pieces: tuple[Piece, ...], source: str) -> None:
        self.pieces = pieces
        self.source = source
        self.variables = tuple(p for p in pieces if isinstance(p, Var))
        self._matchers: dict[tuple[object, tuple[str, ...]], Callable[[str], bool]] = {}

    def values(self, context: Mapping[str, ContextValue]) -> tuple[str, ...] | None:
        """The variables' values in order, or ``None`` when one is unresolved."""
        out = []
        for var in self.variables:
            value = var.lookup(context)
            if value is None:
                return None
            out.append(value)
        return tuple(out)

    def text(self, values: tuple[str, ...]) -> str:
        """The substituted string for resolved ``values``."""
        it = iter(values)
        return "".join(
            p if isinstance(p, str) else p.text if isinstance(p, Lit) else next(it)
            for p in self.pieces
        )

    def tokens(self, values: tuple[str, ...]) -> tuple[Token, ...]:
        """Wildcard tokens after substitution: substituted text is literal."""
        it = iter(values)
        out: list[Token] = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.extend(glob_tokens(piece))
            elif isinstance(piece, Lit):
                out.extend(literal_tokens(piece.text))
            else:
                out.extend(literal_tokens(next(it)))
        return normalise_tokens(out)

    def resolve_text(self, context: Mapping[str, ContextValue]) -> str | None:
        values = self.values(context)
        return None if values is None else self.text(values)

    def resolve_tokens(self, context: Mapping[str, ContextValue]) -> tuple[Token, ...] | None:
        values = self.values(context)
        return None if values is None else self.tokens(values)

    def matcher(
        self,
        context: Mapping[str, ContextValue],
        compile_: Callable[[tuple[Token, ...]], Callable[[str], bool]],
    ) -> Callable[[str], bool] | None:
        """A compiled matcher for this template under ``context``; ``None`` if unresolved."""
        values = self.values(context)
        if values is None:
            return None
        key = (compile_, values)
        found = self._matchers.get(key)
        if found is None:
            found = compile_(self.tokens(values))
            if len(self._matchers) >= self._CACHE_LIMIT:
                self._matchers.clear()
            self._matchers[key] = found
        return found

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.pieces == self.pieces

    def __hash__(self) -> int:
        return hash(self.pieces)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def parse_template(text: str, *, enabled: bool) -> str | Template:
    """Parse ``text``; return it unchanged when it holds no variable (the common, fast case).

    ``enabled`` is false for policies whose Version does not support variables. Malformed
    ``${...}`` sequences are kept as plain text, so they can only ever match themselves.
    """
    if not enabled or "${" not in text:
        return text
    pieces: list[Piece] = []
    pos = 0
    found = False
    for match in _VARIABLE.finditer(text):
        body = match.group(1)
        piece: Piece | None = None
        if body in _SPECIAL:
            piece = Lit(_SPECIAL[body])
        else:
            parsed = _KEY_WITH_DEFAULT.fullmatch(body)
            if parsed:
                piece = Var(parsed.group(1).lower(), parsed.group(2))
        if piece is None:
            continue
        if match.start() > pos:
            pieces.append(text[pos : match.start()])
        pieces.append(piece)
        pos = match.end()
        found = True
    if not found:
        return text
    if pos < len(text):
        pieces.append(text[pos:])
    return Template(tuple(pieces), text)

"""IAM wildcard matching for actions, resources and ``*Like`` conditions.

IAM knows two wildcards, ``*`` (any run of characters) and ``?`` (exactly one character). There
is no escape character and no character class, so ``[`` is an ordinary character; this is why
``fnmatch`` is not used here.

A pattern is first turned into a tuple of *tokens*: ``STAR``, ``ONE`` or a literal string. The
tuple form lets variable substitution splice in literal values that must never act as
wildcards (``${*}`` or a tag value containing ``*``), and it is hashable, so compiled matchers
are cached per pattern.

Patterns compile to regular expressions that cannot backtrack catastrophically: every piece
between two stars is matched at its earliest position inside an atomic group. Matching the
middle pieces of a glob at their earliest occurrence is always correct when ``*`` spans any
character, so the atomic group changes no answer while bounding the work per match.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

Matcher = Callable[[str], bool]


class Wild(enum.Enum):
    """The two IAM wildcards, as tokens."""

    STAR = "*"
    ONE = "?"


Token = Wild | str
STAR = Wild.STAR
ONE = Wild.ONE

_WILDCARD_SPLIT = re.compile(r"([*?])")


def _always(_text: str) -> bool:
    return True


def _never(_text: str) -> bool:
    return False


@lru_cache(maxsize=8192)
def glob_tokens(pattern: str) -> tuple[Token, ...]:
    """Split an IAM pattern into tokens (``*``/``?`` are wildcards, everything else literal)."""
    tokens: list[Token] = []
    for part in _WILDCARD_SPLIT.split(pattern):
        if part == "*":
            tokens.append(STAR)
        elif part == "?":
            tokens.append(ONE)
        elif part:
            tokens.append(part)
    return normalise_tokens(tokens)


def literal_tokens(text: str) -> tuple[Token, ...]:
    """Tokens for text that must match itself exactly (no wildcards)."""
    return (text,) if text else ()


def normalise_tokens(tokens: Iterable[Token]) -> tuple[Token, ...]:
    """Merge adjacent literals and collapse runs of ``*`` so equal patterns share a cache key."""
    out: list[Token] = []
    for tok in tokens:
        if isinstance(tok, str):
            if not tok:
                continue
            if out and isinstance(out[-1], str):
                out[-1] = out[-1] + tok
                continue
        elif tok is STAR and out and out[-1] is STAR:
            continue
        out.append(tok)
    return tuple(out)


def _piece_regex(piece: list[Token]) -> str:
    return "".join("." if tok is ONE else re.escape(tok) for tok in piece)  # type: ignore[arg-type]


def tokens_regex(tokens: tuple[Token, ...]) -> str:
    """Regular expression (for ``fullmatch`` with DOTALL) equivalent to a token tuple."""
    pieces: list[list[Token]] = [[]]
    for tok in tokens:
        if tok is STAR:
            pieces.append([])
        else:
            pieces[-1].append(tok)
    if len(pieces) == 1:
        return _piece_regex(pieces[0])
    head, *middle, tail = pieces
    parts = [_piece_regex(head)]
    for piece in middle:
        if piece:
            parts.append(f"(?>.*?{_piece_regex(piece)})")
    parts.append(f".*{_piece_regex(tail)}")
    return "".join(parts)


@lru_cache(maxsize=8192)
def compile_tokens(tokens: tuple[Token, ...], ignore_case: bool = False) -> Matcher:
    """A fast predicate for one token tuple. Simple shapes avoid the regex engine entirely."""
    if ignore_case:
        lowered = tuple(t.lower() if isinstance(t, str) else t for t in tokens)
        inner = compile_tokens(lowered, False)
        return lambda text: inner(text.lower())
    if not tokens:
        return lambda text: text == ""
    if tokens == (STAR,):
        return _always
    if len(tokens) == 1 and isinstance(tokens[0], str):
        literal = tokens[0]
        return literal.__eq__
    if len(tokens) == 2 and tokens[1] is STAR and isinstance(tokens[0], str):
        prefix = tokens[0]
        return lambda text: text.startswith(prefix)
    if len(tokens) == 2 and tokens[0] is STAR and isinstance(tokens[1], str):
        suffix = tokens[1]
        return lambda text: text.endswith(suffix)
    regex = re.compile(tokens_regex(tokens), re.DOTALL)
    return lambda text: regex.fullmatch(text) is not None


def compile_glob(pattern: str, *, ignore_case: bool = False) -> Matcher:
    """Predicate for an IAM wildcard pattern given as policy text."""
    return compile_tokens(glob_tokens(pattern), ignore_case)


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


# --- actions -------------------------------------------------------------------------------


def compile_actions(patterns: Iterable[str]) -> Matcher:
    """Predicate over a lower-cased action name: does any pattern match it (case-insensitive)?"""
    exact: set[str] = set()
    globs: list[Matcher] = []
    for pattern in patterns:
        lowered = pattern.lower()
        if lowered == "*":
            return _always
        if has_wildcard(lowered):
            globs.append(compile_glob(lowered))
        else:
            exact.add(lowered)
    if not globs:
        return exact.__contains__
    frozen = frozenset(exact)
    return lambda action: action in frozen or any(g(action) for g in globs)


# --- ARNs ----------------------------------------------------------------------------------

ARN_PARTS = 6


def split_arn(value: str) -> tuple[str, ...] | None:
    """Split an ARN at its first five colons; ``None`` if it is not ARN-shaped.

    The sixth part (resource id) keeps any further ``:`` and ``/``.
    """
    parts = value.split(":", ARN_PARTS - 1)
    if len(parts) != ARN_PARTS:
        return None
    return tuple(parts)


def split_resource_pattern(pattern: str) -> tuple[str, ...] | None:
    """Split a Resource pattern into six parts, padding as IAM does.

    A pattern with fewer than six parts that ends in ``*`` (e.g. ``arn:aws:airflow:*``) lets that
    trailing star run past the remaining colons, which is the same as padding with ``*`` parts.
    Any other short pattern can never match an ARN, and ``None`` is returned.
    """
    parts = pattern.split(":", ARN_PARTS - 1)
    if len(parts) == ARN_PARTS:
        return tuple(parts)
    if pattern.endswith("*"):
        return tuple(parts) + ("*",) * (ARN_PARTS - len(parts))
    return None


def compile_segments(parts: tuple[str, ...]) -> Callable[[tuple[str, ...]], bool]:
    """Predicate over the first five parts of a split ARN (each part globbed on its own)."""
    checks: list[tuple[int, Matcher]] = []
    exact: list[tuple[int, str]] = []
    for index, part in enumerate(parts[: ARN_PARTS - 1]):
        if part == "*":
            continue
        if has_wildcard(part):
            checks.append((index, compile_glob(part)))
        else:
            exact.append((index, part))
    if not checks and not exact:
        return lambda _arn: True
    if not checks:
        indexes = tuple(i for i, _ in exact)
        wanted = tuple(v for _, v in exact)
        return lambda arn: tuple(arn[i] for i in indexes) == wanted

    def match(arn: tuple[str, ...]) -> bool:
        for i, value in exact:
            if arn[i] != value:
                return False
        return all(check(arn[i]) for i, check in checks)

    return match


def split_arn_tokens(tokens: tuple[Token, ...]) -> list[tuple[Token, ...]] | None:
    """Split a token tuple into the six ARN parts at its first five literal colons.

    Colons are structural in ARNs, so a colon that came from a substituted variable splits
    parts just like one written in the policy.
    """
    parts: list[list[Token]] = [[]]
    for tok in tokens:
        if isinstance(tok, str) and len(parts) < ARN_PARTS and ":" in tok:
            pieces = tok.split(":", ARN_PARTS - len(parts))
            parts[-1].append(pieces[0])
            for piece in pieces[1:]:
                parts.append([piece])
        else:
            parts[-1].append(tok)
    if len(parts) != ARN_PARTS:
        return None
    return [normalise_tokens(part) for part in parts]


@lru_cache(maxsize=8192)
def compile_arn_tokens(tokens: tuple[Token, ...]) -> Matcher:
    """ArnLike/ArnEquals: both sides split into six parts and compared part by part.

    Unlike ``StringLike``, a ``*`` in the region or account part cannot swallow colons.
    """
    parts = split_arn_tokens(tokens)
    if parts is None:
        return _never
    prefix = [(i, compile_tokens(p)) for i, p in enumerate(parts[:-1]) if p != (STAR,)]
    rid = compile_tokens(parts[-1])

    def match(value: str) -> bool:
        arn = split_arn(value)
        if arn is None:
            return False
        return all(check(arn[i]) for i, check in prefix) and rid(arn[-1])

    return match


def compile_arn_like(pattern: str) -> Matcher:
    """ArnLike matcher for a pattern written in a policy."""
    return compile_arn_tokens(glob_tokens(pattern))

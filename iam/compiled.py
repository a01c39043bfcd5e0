"""Statements compiled into matchers: the form the evaluator runs.

A compiled statement answers three questions, cheapest first:

* does its Action/NotAction cover an action (asked once per distinct action, then indexed by
  :meth:`iam.policy.Policy.rules_for`);
* for resource-based and trust policies, how its Principal relates to the caller
  (:class:`Reach`);
* does it apply to a request: Resource/NotResource, then the Condition block.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from iam.conditions import Condition
from iam.matching import (
    Matcher,
    compile_actions,
    compile_glob,
    compile_segments,
    compile_tokens,
    split_resource_pattern,
)
from iam.request import Caller, Request
from iam.statement import PrincipalSpec, Statement
from iam.variables import Template, parse_template

ResourceCheck = Callable[[Request], bool]


class Reach(enum.IntEnum):
    """How a resource-policy statement's Principal covers the caller.

    ``DIRECT``: names the caller's user or session ARN, so an Allow grants even past a permissions
    boundary or session policy. ``LIMITED``: names the role ARN, or is a wildcard / NotPrincipal;
    the Allow counts like an identity-policy Allow and stays subject to boundary and session
    policy. ``ACCOUNT``: names only the caller's account, which delegates to identity policies
    and grants nothing by itself (a Deny still applies). ``NONE``: not the caller.
    """

    NONE = 0
    ACCOUNT = 1
    LIMITED = 2
    DIRECT = 3


def _always_resource(_request: Request) -> bool:
    return True


def _never_resource(_request: Request) -> bool:
    return False


def compile_resource(pattern: str, *, variables: bool) -> ResourceCheck:
    """Match one Resource entry against ``request.resource``, ARN part by ARN part.

    Variables are substituted only in the resource-id (sixth) part, as IAM specifies; an entry
    whose variable cannot be resolved matches nothing.
    """
    if pattern == "*":
        return _always_resource
    parts = split_resource_pattern(pattern)
    if parts is None:
        return _never_resource
    prefix = compile_segments(parts)
    rid = parse_template(parts[-1], enabled=variables)

    if isinstance(rid, Template):
        template = rid

        def dynamic(request: Request) -> bool:
            arn = request.resource_parts
            if arn is None or not prefix(arn):
                return False
            matcher = template.matcher(request.context, compile_tokens)
            return matcher is not None and matcher(arn[-1])

        return dynamic

    rid_match: Matcher = compile_glob(rid)

    def static(request: Request) -> bool:
        arn = request.resource_parts
        return arn is not None and prefix(arn) and rid_match(arn[-1])

    return static


def _any_resource(checks: list[ResourceCheck]) -> ResourceCheck:
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)
    return lambda request: any(check(request) for check in frozen)


class PrincipalMatcher:
    """Principal/NotPrincipal of a resource-based or trust policy statement.

    A caller is a chain of identities AWS may check one after the other: its account, then for a
    role session the role, then the user or session itself. A Principal covers the caller as
    far as it names the most specific of them (see :class:`Reach`). A NotPrincipal is decided
    over the whole chain, always in the direction that denies: a Deny spares the caller only
    when every identity of the chain is listed (naming a user without its account, or a role
    without the session ARN, spares nothing), while an Allow grants to nobody whose chain holds
    a listed identity.
    """

    __slots__ = ("allow", "ids", "negated", "wildcard")

    def __init__(self, spec: PrincipalSpec, *, negated: bool, allow: bool) -> None:
        self.ids = spec.identifiers()
        self.wildcard = spec.wildcard
        self.negated = negated
        self.allow = allow

    def reach(self, caller: Caller, *, bounded: bool = False) -> Reach:
        """``bounded``: the caller has a permissions boundary (it matters to NotPrincipal)."""
        if self.negated:
            return self._reach_negated(caller, bounded)
        if caller.arn in self.ids:
            return Reach.DIRECT
        if self.wildcard or (caller.role_arn is not None and caller.role_arn in self.ids):
            return Reach.LIMITED
        if caller.account_root_arn in self.ids:
            return Reach.ACCOUNT
        return Reach.NONE

    def _reach_negated(self, caller: Caller, bounded: bool) -> Reach:
        chain = [caller.arn, caller.account_root_arn]
        if caller.role_arn is not None:
            chain.append(caller.role_arn)
        if self.allow:
            # "Everyone but these" never names the caller's own ARN, so, like a wildcard
            # Principal, the grant stays subject to boundary and session policy.
            listed = self.wildcard or any(identity in self.ids for identity in chain)
            return Reach.NONE if listed else Reach.LIMITED
        if bounded:
            # AWS documents that a NotPrincipal Deny denies every principal with a permissions
            # boundary, whatever the element lists.
            return Reach.LIMITED
        spared = self.wildcard or all(identity in self.ids for identity in chain)
        return Reach.NONE if spared else Reach.LIMITED


class CompiledStatement:
    """A statement ready to evaluate. ``source`` keeps the normalised statement for reports."""

    __slots__ = (
        "_covers",
        "allow",
        "conditions",
        "principal",
        "resource_check",
        "source",
    )

    def __init__(self, statement: Statement, *, variables: bool) -> None:
        self.source = statement
        self.allow = statement.allow
        matcher = compile_actions(statement.actions)
        self._covers: Matcher = (
            (lambda action: not matcher(action)) if statement.not_action else matcher
        )
        self.resource_check = self._compile_resources(statement, variables)
        self.conditions: tuple[Condition, ...] = statement.checks
        self.principal = (
            PrincipalMatcher(
                statement.principal, negated=statement.not_principal, allow=statement.allow
            )
            if statement.principal is not None
            else None
        )

    @staticmethod
    def _compile_resources(statement: Statement, variables: bool) -> ResourceCheck | None:
        """``None`` means "every resource", so the hot path can skip the call entirely."""
        if statement.resources is None:
            return None
        checks = [compile_resource(r, variables=variables) for r in statement.resources]
        if statement.not_resource:
            if _always_resource in checks:
                return _never_resource
            inner = _any_resource(checks)
            return lambda request: not inner(request)
        if _always_resource in checks:
            return None
        return _any_resource(checks)

    def covers_action(self, action_key: str) -> bool:
        return self._covers(action_key)

    def applies(self, request: Request) -> bool:
        """Resource and conditions (the action was already matched through the index)."""
        check = self.resource_check
        if check is not None and not check(request):
            return False
        context = request.context
        # An explicit loop: on this hot path it is measurably faster than all(<generator>).
        for condition in self.conditions:  # noqa: SIM110
            if not condition.matches(context):
                return False
        return True

    def reach(self, caller: Caller, *, bounded: bool = False) -> Reach:
        """Principal coverage; identity-policy statements (no Principal) always reach.

        ``bounded``: the caller has a permissions boundary.
        """
        if self.principal is None:
            return Reach.DIRECT
        return self.principal.reach(caller, bounded=bounded)

    def __repr__(self) -> str:
        return f"<CompiledStatement {self.source.where} {self.source.effect}>"


def compile_statement(statement: Statement, *, variables: bool) -> CompiledStatement:
    return CompiledStatement(statement, variables=variables)

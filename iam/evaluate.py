"""The decision algorithm for one account (reference section 1).

1. Any applicable Deny, in any policy type, is final: ``ExplicitDeny``. (A resource-policy Deny
   with NotPrincipal applies to every caller that has a permissions boundary, as AWS documents.)
2. A resource-policy Allow whose Principal names the caller's user or session ARN: ``Allow``,
   whatever the boundary or session policy says.
3. Otherwise an Allow is needed from an identity policy or from a resource policy naming the
   caller's role ARN (or a wildcard principal, or a NotPrincipal that lists none of the
   caller's identities); without one: ``ImplicitDeny``.
4. A permissions boundary, when present, must also allow; so must a session policy.

Boundaries and session policies never grant; they only take away.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from iam.compiled import Reach
from iam.policy import Policy
from iam.request import Request


class Decision(enum.StrEnum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


PolicyInput = Policy | Sequence[Policy] | None


def _as_tuple(policies: PolicyInput) -> tuple[Policy, ...] | None:
    """``None`` means "this policy type is not in play"; a boundary given as an empty list is
    treated the same way (there is nothing to intersect with)."""
    if policies is None:
        return None
    if isinstance(policies, Policy):
        return (policies,)
    return tuple(policies) or None


def _check_kinds(
    identity: tuple[Policy, ...],
    boundary: tuple[Policy, ...] | None,
    session: tuple[Policy, ...] | None,
    resource: tuple[Policy, ...],
) -> None:
    """A policy in the wrong slot would silently widen access (an identity policy has no
    Principal, so as a resource policy it would grant to everyone): refuse it outright."""
    for group in (identity, boundary or (), session or ()):
        for policy in group:
            if policy.kind != "identity":
                raise ValueError(f"{policy!r} is a {policy.kind} policy, not an identity policy")
    for policy in resource:
        if policy.kind == "identity":
            raise ValueError(f"{policy!r} is an identity policy, not a resource-based policy")


def _any_allow(policies: Iterable[Policy], request: Request) -> bool:
    action = request.action_key
    for policy in policies:
        for statement in policy.rules_for(action)[1]:
            if statement.applies(request):
                return True
    return False


def evaluate(
    request: Request,
    *,
    identity: PolicyInput = (),
    resource: PolicyInput = (),
    boundary: PolicyInput = None,
    session: PolicyInput = None,
) -> Decision:
    """Decide ``request`` against the caller's policies.

    ``identity``: the caller's identity policies (user + groups, or role), attached and inline.
    ``resource``: resource-based policies on the target (Principal decides whom they cover).
    ``boundary``: the caller's permissions boundary, if any.
    ``session``: session policies of a role or federated session, if any.
    """
    identity_p = _as_tuple(identity) or ()
    resource_p = _as_tuple(resource) or ()
    boundary_p = _as_tuple(boundary)
    session_p = _as_tuple(session)
    _check_kinds(identity_p, boundary_p, session_p, resource_p)
    action = request.action_key
    caller = request.principal

    # 1. Explicit deny anywhere wins.
    for group in (identity_p, boundary_p or (), session_p or ()):
        for policy in group:
            for statement in policy.rules_for(action)[0]:
                if statement.applies(request):
                    return Decision.EXPLICIT_DENY
    bounded = boundary_p is not None
    for policy in resource_p:
        for statement in policy.rules_for(action)[0]:
            reach = statement.reach(caller, bounded=bounded)
            if reach is not Reach.NONE and statement.applies(request):
                return Decision.EXPLICIT_DENY

    # 2. Resource-policy grants: direct ones decide at once, limited ones count as a grant.
    granted = False
    for policy in resource_p:
        for statement in policy.rules_for(action)[1]:
            reach = statement.reach(caller)
            if reach < Reach.LIMITED or (granted and reach is not Reach.DIRECT):
                continue
            if statement.applies(request):
                if reach is Reach.DIRECT:
                    return Decision.ALLOW
                granted = True

    # 3. Identity policies.
    if not granted and not _any_allow(identity_p, request):
        return Decision.IMPLICIT_DENY

    # 4. Boundary and session policy intersect.
    if boundary_p is not None and not _any_allow(boundary_p, request):
        return Decision.IMPLICIT_DENY
    if session_p is not None and not _any_allow(session_p, request):
        return Decision.IMPLICIT_DENY
    return Decision.ALLOW

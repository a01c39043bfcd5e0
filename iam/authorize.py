"""One-call authorization for a directory principal, and the AccessDenied message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from iam.evaluate import Decision, evaluate
from iam.identities import Principal
from iam.policy import Policy
from iam.request import Request, context_value

# Keys that describe the caller. They come from the directory only: a value passed in the
# request context is dropped so it can never impersonate another principal or tag.
_PRINCIPAL_KEYS = frozenset(
    {"aws:username", "aws:userid", "aws:tokenissuetime", "aws:multifactorauthpresent"}
)


def build_request(
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, str | Sequence[str]] | None = None,
) -> Request:
    """A :class:`Request` whose context is ``context`` plus the principal's own keys."""
    merged: dict[str, str | tuple[str, ...]] = {}
    for key, value in (context or {}).items():
        low = key.lower()
        if low.startswith("aws:principal") or low in _PRINCIPAL_KEYS:
            continue
        merged[low] = value if type(value) is str else context_value(value)  # type: ignore[assignment]
    merged.update(principal.context_lower)
    return Request.prepared(action, resource, principal.caller, merged)


def authorize(
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, str | Sequence[str]] | None = None,
    resource_policies: Iterable[Policy] = (),
) -> Decision:
    """Decide whether ``principal`` may perform ``action`` on ``resource``.

    Combines the principal's identity policies, permissions boundary and session policies with
    any resource-based policies of the target. ``context`` holds request keys such as
    ``aws:SourceIp``, ``aws:ResourceTag/...``, ``aws:RequestTag/...`` (see
    :func:`iam.request.global_context`).
    """
    request = build_request(principal, action, resource, context)
    return evaluate(
        request,
        identity=principal.identity_policies,
        resource=tuple(resource_policies),
        boundary=principal.boundary,
        session=principal.session_policies,
    )


def access_denied_message(
    principal: Principal, action: str, resource: str, decision: Decision
) -> str:
    """The AccessDeniedException message AWS services return (always "User: ...", also for
    role sessions)."""
    if decision is Decision.EXPLICIT_DENY:
        reason = "with an explicit deny"
    else:
        reason = f"because no identity-based policy allows the {action} action"
    return (
        f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource} "
        f"{reason}"
    )


def authorize_assume_role(
    principal: Principal,
    role_arn: str,
    trust_policy: Policy | None,
    context: Mapping[str, str | Sequence[str]] | None = None,
) -> Decision:
    """May ``principal`` assume the role? (``sts:AssumeRole`` on the role ARN.)

    The trust policy acts as the role's resource-based policy: naming the caller's ARN grants
    on its own, naming the account delegates to the caller's identity policies. A role without a
    trust policy cannot be assumed.
    """
    if trust_policy is None:
        return Decision.IMPLICIT_DENY
    return authorize(principal, "sts:AssumeRole", role_arn, context, (trust_policy,))

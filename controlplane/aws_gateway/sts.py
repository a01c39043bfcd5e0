"""The STS calls the gateway answers itself: AssumeRole and GetCallerIdentity.

moto's STS would mint credentials nobody else knows and name a caller it guessed. Here a role
session is minted into the shared key store, so it authenticates on every endpoint that shares
it, and GetCallerIdentity names the principal that signed.

AssumeRole is allowed by the role's trust policy (a role of the IAM config or of the embedded
IAM) together with the caller's identity policies, as in AWS. The bootstrap admin may assume any
role: it is the identity the control plane acts as when it does what the MWAA service does (read
the DAG bucket as the environment's execution role, whose trust policy names
airflow.amazonaws.com).
"""

from __future__ import annotations

import re
import uuid
from xml.sax.saxutils import escape

import iam
from controlplane.aws_gateway.identity import EMBEDDED_ROLE, Identities
from controlplane.aws_gateway.moto_state import MotoState
from controlplane.aws_gateway.wire import DENIED, Incoming, Refusal
from controlplane.keystore import MAX_SESSION_SECONDS

_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)


class StsInvalid(Exception):
    """A ValidationError of STS: the request is malformed."""


def _answer(operation: str, result: str) -> bytes:
    return (
        f'<{operation}Response xmlns="{_NS}"><{operation}Result>{result}</{operation}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{operation}Response>"
    ).encode()


def caller_identity(principal: iam.Principal) -> bytes:
    return _answer(
        "GetCallerIdentity",
        f"<UserId>{escape(principal.user_id)}</UserId><Account>{principal.account}</Account>"
        f"<Arn>{escape(principal.arn)}</Arn>",
    )


def assume_role(
    req: Incoming,
    principal: iam.Principal,
    identities: Identities,
    state: MotoState,
    context: dict[str, str],
) -> bytes:
    params = req.params
    role_arn = str(params.get("RoleArn") or "")
    session_name = str(params.get("RoleSessionName") or "")
    if not _SESSION_NAME.fullmatch(session_name):
        raise StsInvalid(
            "1 validation error detected: Value at 'roleSessionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        )
    try:
        seconds = int(params.get("DurationSeconds") or 3600)
    except ValueError:
        raise StsInvalid("DurationSeconds must be a number of seconds.") from None
    if not 900 <= seconds <= MAX_SESSION_SECONDS:
        raise StsInvalid(
            f"The requested DurationSeconds exceeds the allowed range of 900 to "
            f"{MAX_SESSION_SECONDS} seconds."
        )
    admin = principal.arn == identities.admin_arn()
    configured = identities.configured_role(role_arn)
    embedded = None if configured else state.role_by_arn(role_arn)
    if configured is not None:
        trust, owner, role_id = configured.trust_policy, configured.name, configured.role_id
    elif embedded is not None:
        trust, owner, role_id = (
            state.trust_policy(embedded),
            EMBEDDED_ROLE + embedded.id,
            embedded.id,
        )
    else:
        trust, owner, role_id = None, None, None
    decision = (
        iam.Decision.ALLOW
        if admin and owner is not None
        else iam.authorize_assume_role(principal, role_arn, trust, context)
    )
    if owner is None or not decision.allowed:
        raise Refusal(
            DENIED,
            iam.access_denied_message(principal, "sts:AssumeRole", role_arn, decision),
        )
    key = identities.mint_session(owner, session_name, seconds)
    role_name = role_arn.rpartition("/")[2]
    return _answer(
        "AssumeRole",
        "<Credentials>"
        f"<AccessKeyId>{key.access_key_id}</AccessKeyId>"
        f"<SecretAccessKey>{escape(key.secret_access_key)}</SecretAccessKey>"
        f"<SessionToken>{escape(key.session_token or '')}</SessionToken>"
        f"<Expiration>{key.expires}</Expiration>"
        "</Credentials>"
        "<AssumedRoleUser>"
        f"<AssumedRoleId>{escape(str(role_id))}:{escape(session_name)}</AssumedRoleId>"
        f"<Arn>arn:aws:sts::{principal.account}:assumed-role/{escape(role_name)}/"
        f"{escape(session_name)}</Arn>"
        "</AssumedRoleUser>",
    )

"""S3 requests -> the IAM actions and ARNs of the Service Authorization Reference.

A REST request names its operation by method, by whether it addresses a bucket or an object,
and by a subresource in the query (``?policy``, ``?versioning``, ...). Some operations are
authorized by another action's name (DeleteBucketTagging needs ``s3:PutBucketTagging``,
GetBucketNotificationConfiguration ``s3:GetBucketNotification``, HeadObject ``s3:GetObject``),
as AWS documents. An operation this table does not know asks for ``s3:<Method><Subresource>``,
which only a wildcard grant allows.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from urllib.parse import unquote

from controlplane.aws_gateway.checks import Check
from controlplane.aws_gateway.wire import Incoming

_BUCKET_GET = {
    "": "ListBucket",
    "versions": "ListBucketVersions",
    "uploads": "ListBucketMultipartUploads",
    "location": "GetBucketLocation",
    "policy": "GetBucketPolicy",
    "policyStatus": "GetBucketPolicyStatus",
    "versioning": "GetBucketVersioning",
    "notification": "GetBucketNotification",
    "acl": "GetBucketAcl",
    "tagging": "GetBucketTagging",
    "cors": "GetBucketCORS",
    "lifecycle": "GetLifecycleConfiguration",
    "encryption": "GetEncryptionConfiguration",
    "publicAccessBlock": "GetBucketPublicAccessBlock",
    "ownershipControls": "GetBucketOwnershipControls",
    "website": "GetBucketWebsite",
    "logging": "GetBucketLogging",
    "object-lock": "GetBucketObjectLockConfiguration",
    "replication": "GetReplicationConfiguration",
    "requestPayment": "GetBucketRequestPayment",
    "accelerate": "GetAccelerateConfiguration",
    "analytics": "GetAnalyticsConfiguration",
    "metrics": "GetMetricsConfiguration",
    "inventory": "GetInventoryConfiguration",
    "intelligent-tiering": "GetIntelligentTieringConfiguration",
}
_BUCKET_PUT = {
    "": "CreateBucket",
    "versioning": "PutBucketVersioning",
    "policy": "PutBucketPolicy",
    "notification": "PutBucketNotification",
    "acl": "PutBucketAcl",
    "tagging": "PutBucketTagging",
    "cors": "PutBucketCORS",
    "lifecycle": "PutLifecycleConfiguration",
    "encryption": "PutEncryptionConfiguration",
    "publicAccessBlock": "PutBucketPublicAccessBlock",
    "ownershipControls": "PutBucketOwnershipControls",
    "website": "PutBucketWebsite",
    "logging": "PutBucketLogging",
    "object-lock": "PutBucketObjectLockConfiguration",
    "replication": "PutReplicationConfiguration",
    "requestPayment": "PutBucketRequestPayment",
    "accelerate": "PutAccelerateConfiguration",
    "analytics": "PutAnalyticsConfiguration",
    "metrics": "PutMetricsConfiguration",
    "inventory": "PutInventoryConfiguration",
    "intelligent-tiering": "PutIntelligentTieringConfiguration",
}
_BUCKET_DELETE = {
    "": "DeleteBucket",
    "policy": "DeleteBucketPolicy",
    "website": "DeleteBucketWebsite",
    "tagging": "PutBucketTagging",
    "cors": "PutBucketCORS",
    "lifecycle": "PutLifecycleConfiguration",
    "encryption": "PutEncryptionConfiguration",
    "publicAccessBlock": "PutBucketPublicAccessBlock",
    "ownershipControls": "PutBucketOwnershipControls",
    "replication": "PutReplicationConfiguration",
    "analytics": "PutAnalyticsConfiguration",
    "metrics": "PutMetricsConfiguration",
    "inventory": "PutInventoryConfiguration",
    "intelligent-tiering": "PutIntelligentTieringConfiguration",
}
_OBJECT_GET = {
    "": "GetObject",
    "acl": "GetObjectAcl",
    "tagging": "GetObjectTagging",
    "attributes": "GetObjectAttributes",
    "uploadId": "ListMultipartUploadParts",
    "retention": "GetObjectRetention",
    "legal-hold": "GetObjectLegalHold",
    "torrent": "GetObjectTorrent",
}
_OBJECT_PUT = {
    "": "PutObject",
    "uploadId": "PutObject",  # UploadPart
    "acl": "PutObjectAcl",
    "tagging": "PutObjectTagging",
    "retention": "PutObjectRetention",
    "legal-hold": "PutObjectLegalHold",
}
_OBJECT_POST = {
    "uploads": "PutObject",  # CreateMultipartUpload
    "uploadId": "PutObject",  # CompleteMultipartUpload
    "restore": "RestoreObject",
    "select": "GetObject",
}
_OBJECT_DELETE = {
    "": "DeleteObject",
    "uploadId": "AbortMultipartUpload",
    "tagging": "DeleteObjectTagging",
}
# Actions that have a separate name when they address one version of an object.
_VERSIONED = {
    "GetObject": "GetObjectVersion",
    "DeleteObject": "DeleteObjectVersion",
    "GetObjectAcl": "GetObjectVersionAcl",
    "PutObjectAcl": "PutObjectVersionAcl",
    "GetObjectTagging": "GetObjectVersionTagging",
    "PutObjectTagging": "PutObjectVersionTagging",
    "DeleteObjectTagging": "DeleteObjectVersionTagging",
    "GetObjectAttributes": "GetObjectVersionAttributes",
}
_SUBRESOURCES = {
    *_BUCKET_GET,
    *_BUCKET_PUT,
    *_BUCKET_DELETE,
    *_OBJECT_GET,
    *_OBJECT_POST,
    "delete",
} - {""}
_LIST_KEYS = {"prefix": "s3:prefix", "delimiter": "s3:delimiter", "max-keys": "s3:max-keys"}
_MAX_DELETE_KEYS = 1000


def bucket_and_key(req: Incoming) -> tuple[str | None, str | None]:
    """Path-style (``/bucket/key``) or virtual-hosted (``bucket.s3.amazonaws.com``)."""
    host = (req.header("host") or "").rsplit(":", 1)[0].lower()
    for suffix in (".s3.amazonaws.com", ".localhost"):
        if host.endswith(suffix):
            bucket = host[: -len(suffix)]
            key = req.path.lstrip("/") or None
            return (bucket.split(".s3.")[0] or None), key
    parts = req.path.lstrip("/").split("/", 1)
    bucket = parts[0] or None
    key = parts[1] if len(parts) > 1 and parts[1] else None
    return bucket, key


def s3_checks(req: Incoming) -> list[Check]:
    bucket, key = bucket_and_key(req)
    names = [name for name, _ in req.query]
    sub = next((n for n in names if n in _SUBRESOURCES), "")
    if bucket is None:
        if req.method in ("GET", "HEAD"):
            return [Check("s3:ListAllMyBuckets", "*")]
        return [Check(f"s3:{req.method.title()}Service", "*")]
    bucket_arn = f"arn:aws:s3:::{bucket}"
    owner = ("s3", bucket)
    if key is None:
        if req.method == "POST" and sub == "delete":
            return _delete_objects(req, bucket, owner)
        table = {
            "GET": _BUCKET_GET,
            "HEAD": {"": "ListBucket"},
            "PUT": _BUCKET_PUT,
            "DELETE": _BUCKET_DELETE,
        }.get(req.method, {})
        action = table.get(sub) or f"{req.method.title()}Bucket{sub[:1].upper()}{sub[1:]}"
        context = {}
        if action in ("ListBucket", "ListBucketVersions"):
            context = {_LIST_KEYS[n]: v for n, v in req.query if n in _LIST_KEYS}
        return [Check(f"s3:{action}", bucket_arn, context, owner)]

    table = {
        "GET": _OBJECT_GET,
        "HEAD": {"": "GetObject"},
        "PUT": _OBJECT_PUT,
        "POST": _OBJECT_POST,
        "DELETE": _OBJECT_DELETE,
    }.get(req.method, {})
    action = table.get(sub) or f"{req.method.title()}Object{sub[:1].upper()}{sub[1:]}"
    if "versionId" in names:
        action = _VERSIONED.get(action, action)
    checks = [Check(f"s3:{action}", f"{bucket_arn}/{key}", {}, owner)]
    source = req.header("x-amz-copy-source")
    if source and req.method == "PUT":
        checks.append(_copy_source(source))
    return checks


def _copy_source(header: str) -> Check:
    """CopyObject and UploadPartCopy also read the source object."""
    path, _, query = unquote(header).partition("?")
    src_bucket, _, src_key = path.lstrip("/").partition("/")
    action = "s3:GetObjectVersion" if "versionId=" in query else "s3:GetObject"
    return Check(action, f"arn:aws:s3:::{src_bucket}/{src_key}", {}, ("s3", src_bucket))


def _delete_objects(req: Incoming, bucket: str, owner: tuple[str, str]) -> list[Check]:
    """DeleteObjects needs s3:DeleteObject (or ...Version) on every key it names."""
    try:
        root = ElementTree.fromstring(req.body or b"<Delete/>")
    except ElementTree.ParseError:
        return [Check("s3:DeleteObject", f"arn:aws:s3:::{bucket}/*", {}, owner)]
    checks = []
    for element in root.iter():
        if not element.tag.endswith("Object"):
            continue
        key = version = None
        for child in element:
            if child.tag.endswith("Key"):
                key = child.text or ""
            elif child.tag.endswith("VersionId"):
                version = child.text
        if key is not None:
            action = "s3:DeleteObjectVersion" if version else "s3:DeleteObject"
            checks.append(Check(action, f"arn:aws:s3:::{bucket}/{key}", {}, owner))
        if len(checks) > _MAX_DELETE_KEYS:
            break
    return checks or [Check("s3:DeleteObject", f"arn:aws:s3:::{bucket}/*", {}, owner)]

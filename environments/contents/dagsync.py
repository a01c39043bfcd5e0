"""Mirror an environment's DagS3Path prefix into its workspace `dags/` folder.

- Incremental: a manifest of {relative path: ETag} decides what to download.
- Atomic: each file is written to a temporary name beside its target and renamed over it.
- Path-safe: keys with `..`, `.`, empty or absolute segments are refused; nothing is ever
  written outside `dags/`. A refusal is logged when it is new or its reason changed, not on
  every pass: the refused keys are remembered beside the manifest.
- Bounded: object count, object size and total size limits, each with a clear error.
- Streaming: the listing is consumed page by page; only the set of keys is kept.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from environments.plumbing.files import TEMP_PREFIX, atomic_output
from environments.workspace import Workspace

log = logging.getLogger(__name__)

MANIFEST = "dags-manifest.json"
REFUSED = "dags-refused.json"  # {key: reason} of the last complete pass, and events since


@dataclass(frozen=True)
class SyncLimits:
    max_objects: int = 20_000
    max_object_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024


class SyncError(Exception):
    """The prefix cannot be mirrored as a whole (a limit was crossed)."""


class UnsafeKey(ValueError):
    pass


@dataclass
class SyncReport:
    downloaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.downloaded or self.deleted)


def dag_prefix(dag_s3_path: str) -> str:
    path = dag_s3_path.strip("/")
    return f"{path}/" if path else ""


def relative_path(key: str, prefix: str) -> PurePosixPath:
    """The path of `key` under `prefix`, or UnsafeKey if it could escape or is ambiguous."""
    if not key.startswith(prefix):
        raise UnsafeKey("outside the DAG prefix")
    rel = key[len(prefix) :]
    if not rel:
        raise UnsafeKey("empty name")
    if rel.startswith("/"):
        raise UnsafeKey("absolute path")
    if "\\" in rel or "\x00" in rel:
        raise UnsafeKey("backslash or NUL in the name")
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeKey(f"'{part or '(empty)'}' path segment")
        if part.startswith(TEMP_PREFIX):
            raise UnsafeKey("name reserved for temporary files")
        if len(part.encode()) > 255:
            raise UnsafeKey("path segment longer than 255 bytes")
    return PurePosixPath(*parts)


class DagSyncer:
    def __init__(self, workspace: Workspace, limits: SyncLimits | None = None) -> None:
        self.workspace = workspace
        self.limits = limits or SyncLimits()
        self._root = workspace.dags.resolve() if workspace.dags.exists() else workspace.dags

    def sync(self, s3: Any, bucket: str, dag_s3_path: str) -> SyncReport:
        """A full incremental pass over the prefix."""
        prefix = dag_prefix(dag_s3_path)
        report = SyncReport()
        with self.workspace.locked("dags"):
            self.workspace.dags.mkdir(parents=True, exist_ok=True)
            self._root = self.workspace.dags.resolve()
            manifest: dict[str, str] = self.workspace.read_json(MANIFEST, {})
            seen: set[str] = set()
            count = total = 0
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            # Deletions happen only after a complete listing: an exception here leaves them.
            for page in pages:
                for obj in page.get("Contents", ()):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a folder marker, not a file
                    count += 1
                    total += obj.get("Size", 0)
                    self._check_totals(count, total)
                    rel = self._admit(key, prefix, obj.get("Size", 0), report)
                    if rel is None:
                        continue
                    seen.add(rel)
                    if manifest.get(rel) == obj["ETag"] and (self._root / rel).is_file():
                        report.unchanged += 1
                        continue
                    etag = self._download(s3, bucket, key, rel, report)
                    if etag is not None:
                        manifest[rel] = etag
            for rel in sorted(set(manifest) - seen):
                self._delete(rel, report)
                manifest.pop(rel, None)
            self.workspace.write_json(MANIFEST, manifest)
            self._note_refusals(report, complete=True)
        return report

    def apply_event(self, s3: Any, bucket: str, dag_s3_path: str, key: str, created: bool) -> bool:
        """Apply one S3 event for `key`; True if the local mirror changed."""
        prefix = dag_prefix(dag_s3_path)
        if not key.startswith(prefix) or key.endswith("/"):
            return False
        report = SyncReport()
        with self.workspace.locked("dags"):
            try:
                self._apply(s3, bucket, prefix, key, created, report)
            finally:
                self._note_refusals(report, complete=False)
        return report.changed

    def _apply(
        self, s3: Any, bucket: str, prefix: str, key: str, created: bool, report: SyncReport
    ) -> None:
        self.workspace.dags.mkdir(parents=True, exist_ok=True)
        self._root = self.workspace.dags.resolve()
        manifest: dict[str, str] = self.workspace.read_json(MANIFEST, {})
        if created:
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
            except Exception:  # gone again already; the next pass settles it
                return
            rel = self._admit(key, prefix, head.get("ContentLength", 0), report)
            if rel is None or manifest.get(rel) == head.get("ETag"):
                return
            etag = self._download(s3, bucket, key, rel, report)
            if etag is None:
                return
            manifest[rel] = etag
        else:
            try:
                rel = str(relative_path(key, prefix))
            except UnsafeKey:
                return
            if rel not in manifest:
                return
            self._delete(rel, report)
            manifest.pop(rel, None)
        self.workspace.write_json(MANIFEST, manifest)

    # --- helpers ------------------------------------------------------------------------

    def _check_totals(self, count: int, total: int) -> None:
        if count > self.limits.max_objects:
            raise SyncError(
                f"The DAG folder holds more than {self.limits.max_objects} objects; "
                "nothing beyond that limit is synced."
            )
        if total > self.limits.max_total_bytes:
            raise SyncError(
                f"The DAG folder holds more than {self.limits.max_total_bytes} bytes in all."
            )

    def _admit(self, key: str, prefix: str, size: int, report: SyncReport) -> str | None:
        try:
            rel = relative_path(key, prefix)
        except UnsafeKey as err:
            report.refused.append((key, str(err)))
            return None
        if size > self.limits.max_object_bytes:
            report.refused.append((key, f"larger than {self.limits.max_object_bytes} bytes"))
            return None
        # relative_path() admits no "..", "." or empty segment and Airdock never creates
        # links inside dags/, so the joined path cannot leave the folder; no resolve() needed.
        return str(rel)

    def _note_refusals(self, report: SyncReport, *, complete: bool) -> None:
        """Log each refusal that is new or whose reason changed, and remember them all. A
        complete pass replaces what is remembered (a key fixed or removed is forgotten, and
        logged again should it come back); an event adds to it."""
        before: dict[str, str] = self.workspace.read_json(REFUSED, {})
        now = dict(report.refused) if complete else {**before, **dict(report.refused)}
        for key, reason in report.refused:
            if before.get(key) != reason:
                log.warning(
                    "refusing DAG object %r of %s: %s", key, self.workspace.root.name, reason
                )
        if now != before:
            self.workspace.write_json(REFUSED, now)

    def _download(self, s3: Any, bucket: str, key: str, rel: str, report: SyncReport) -> str | None:
        target = self._root / rel
        if not target.parent.resolve().is_relative_to(self._root):
            report.refused.append((key, "resolves outside the DAG folder"))
            return None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            report.refused.append((key, "a file already uses part of this path"))
            return None
        if target.is_dir():
            report.refused.append((key, "a folder already uses this path"))
            return None
        answer = s3.get_object(Bucket=bucket, Key=key)
        # Readable by the environment's group (its account, when Airdock runs as root).
        with atomic_output(target, mode=0o640) as handle:
            for chunk in answer["Body"].iter_chunks(1 << 16):
                handle.write(chunk)
        report.downloaded.append(rel)
        return answer["ETag"]

    def _delete(self, rel: str, report: SyncReport) -> None:
        target = self._root / rel
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        report.deleted.append(rel)
        parent = target.parent
        while parent != self._root and parent.is_relative_to(self._root):
            try:
                parent.rmdir()  # only succeeds when empty
            except OSError:
                break
            parent = parent.parent

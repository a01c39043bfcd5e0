"""Durable state for the embedded AWS.

moto keeps everything in memory. This package snapshots moto's backends to a state directory
while the server runs and restores them before it serves again, so a restart (even a SIGKILL)
loses at most the last moment of changes. Each module owns one concern:

- gate: the shared/exclusive lock between request threads and the snapshot writer
- changes: whether anything worth snapshotting happened since the last snapshot
- operations: telling read-only AWS calls from mutating ones
- middleware: the WSGI layer that ties requests to the gate and the change tracker
- long_poll: keeps SQS long polls from holding the gate while they wait
- backends: finding moto's backend registries and putting restored backends back in place
- pickling: the pickler that knows how to save what plain pickle cannot
- s3_bodies: S3 object bodies kept content-addressed on disk instead of in every snapshot
- blobs: the content-addressed file store for those bodies
- snapshot_file: the on-disk snapshot format (versioned, checksummed, written atomically)
- store: the state directory (generations, fallback, quarantine, blob garbage collection)
- persister: the background thread that writes snapshots
- errors: damaged versus incompatible state, as distinct exceptions
"""

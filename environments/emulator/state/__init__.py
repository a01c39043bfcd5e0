"""Durable state for the embedded AWS.

moto keeps everything in memory. This package makes every acknowledged change durable: each
mutating request is appended to a write-ahead journal and fsynced (group commit) before its
response leaves; snapshots of moto's backends compact the journal now and then; a restart
restores the newest good snapshot and replays the journal after it, so even a SIGKILL loses
nothing that was acknowledged. Each module owns one concern:

- gate: the shared/exclusive lock between request threads and the snapshot writer
- changes: whether anything worth snapshotting happened (the snapshot-only mode)
- operations: telling read-only AWS calls from mutating ones
- middleware: the WSGI layer that ties requests to the gate, the journal and the tracker
- journal: the write-ahead journal (mutation lock, group commit, compaction)
- journal_file: its on-disk format (segments of framed, checksummed records)
- replay: running a request so that its replay does the same, and replaying records
- randomness, clock: moto's ids and timestamps, reproducible by a replay
- long_poll: keeps SQS long polls from holding the gate or the journal while they wait
- backends: finding moto's backend registries and putting restored backends back in place
- pickling: the pickler that knows how to save what plain pickle cannot
- s3_bodies: S3 object bodies kept content-addressed on disk instead of in every snapshot
- blobs: the content-addressed file store for those bodies
- snapshot_file: the on-disk snapshot format (versioned, checksummed, written atomically)
- store: the state directory (generations, fallback, quarantine, blob garbage collection)
- persister: the background thread that writes snapshots
- errors: damaged versus incompatible state, as distinct exceptions
"""

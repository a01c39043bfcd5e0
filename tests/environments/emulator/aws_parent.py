"""A parent process for an EmbeddedAws, as `airdock serve` is one: tests SIGKILL the two at once.

    python -m tests.environments.emulator.aws_parent <data-dir>

Prints "<port> <emulator pid>" once the embedded AWS answers, then waits; SIGTERM stops the
embedded AWS in order.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from environments.emulator.supervisor import EmbeddedAws


def main() -> None:
    aws = EmbeddedAws(Path(sys.argv[1]))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    # Generous: a replay after a crash, on a busy machine, can take a while.
    aws.start(timeout=120)
    assert aws._process is not None
    print(aws.port, aws._process.pid, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    aws.stop()


if __name__ == "__main__":
    main()

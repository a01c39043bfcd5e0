"""Entry point of the embedded AWS child process: moto's server on a loopback port."""

from __future__ import annotations

import argparse
import signal
import threading

from moto.server import ThreadedMotoServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Airdock's embedded AWS (moto)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", default=None)
    args = parser.parse_args(argv)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    server.start()
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()

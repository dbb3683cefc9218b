"""``python -m airflow_provider_easify.sandbox``: run the sandbox until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from .config import SandboxConfig
from .models import DEFAULT_TOKEN
from .server import EasifySandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_easify.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088, help="0 picks a free port (see --port-file)")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--send-limit", type=int)
    parser.add_argument("--send-window", type=float, dest="send_window_seconds")
    parser.add_argument("--read-limit", type=int)
    parser.add_argument("--read-window", type=float, dest="read_window_seconds")
    parser.add_argument("--pending-seconds", type=float)
    parser.add_argument("--delivered-seconds", type=float)
    parser.add_argument("--max-page-size", type=int)
    parser.add_argument("--report-days", type=int)
    parser.add_argument("--rows-per-day", type=int, dest="report_rows_per_day")
    parser.add_argument("--log-requests", action="store_true", default=None, help="log requests on stderr")
    parser.add_argument("--port-file", help="write the bound port to this file once listening")
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    config = SandboxConfig()
    names = (
        "seed", "send_limit", "send_window_seconds", "read_limit", "read_window_seconds", "pending_seconds",
        "delivered_seconds", "max_page_size", "report_days", "report_rows_per_day", "log_requests",
    )
    config.update({name: getattr(args, name) for name in names if getattr(args, name) is not None})
    return config


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sandbox = EasifySandbox(host=args.host, port=args.port, token=args.token, config=config).start()
    try:
        if args.port_file:
            temporary = f"{args.port_file}.tmp{os.getpid()}"
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(f"{sandbox.port}\n")
            os.replace(temporary, args.port_file)
        print(f"Easify sandbox listening on {sandbox.api_url} (token: {sandbox.token})", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

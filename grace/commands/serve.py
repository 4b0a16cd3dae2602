"""`grace serve`: start a model's local vLLM server, print its URL, stop it on Ctrl-C."""

from __future__ import annotations

import argparse
import time

from grace.commands.common import add_config_option, config_from
from grace.serving import LocalVLLMServer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run a model's vLLM server until Ctrl-C")
    add_config_option(p)
    p.add_argument("--model", default="local")
    p.add_argument("--profile", default="local")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    model = cfg.model(args.model)
    with LocalVLLMServer(model, profile=args.profile, port=args.port) as ep:
        print(f"serving {ep.model} at {ep.v1} (Ctrl-C stops it)", flush=True)
        while True:
            time.sleep(3600)

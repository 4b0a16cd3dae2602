"""`grace prefetch`: a model's weights into the cache before its server is started (the prefetch Job's command)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grace.commands.common import add_config_option, config_from
from grace.errors import GraceError
from grace.serving.prefetch import local_hub_cache, prefetch, termination_message


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prefetch", help="resolve a model's revision to its commit and fetch its weights into the cache")
    add_config_option(p)
    p.add_argument("--model", required=True, help="model name from config/models.yaml")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: the model's revision)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="the Hugging Face hub cache to fill (default: HF_HUB_CACHE, else .grace/hf/hub)")
    p.add_argument("--termination-log", type=Path, default=None,
                   help="also write the result here (a Kubernetes container's /dev/termination-log)")
    p.set_defaults(func=run_prefetch)


def run_prefetch(args: argparse.Namespace) -> int:
    model = config_from(args).model(args.model)
    try:
        marker = prefetch(model, revision=args.revision, hub_cache=args.cache_dir or local_hub_cache())
    except GraceError as e:
        if args.termination_log:  # what the flow reads from the pod's status: the reason, not a traceback
            args.termination_log.write_text(str(e)[:4000])
        raise
    text = termination_message(marker)
    if args.termination_log:
        args.termination_log.write_text(text)
    print(text)
    got = "already in the cache" if not marker.downloaded_bytes else f"{marker.downloaded_bytes / 1e6:,.1f} MB fetched"
    print(f"{model.name}: {marker.hf_id}@{marker.requested} is commit {marker.commit}: {marker.file_count} files, "
          f"{marker.total_bytes / 1e6:,.1f} MB ({got} in {marker.seconds:.1f} s)")
    return 0

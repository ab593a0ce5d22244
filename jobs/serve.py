"""A deployment's process: merge a LoRA adapter into its base when the job did not, then become the
OpenAI-compatible server (`transformers serve`) for the model.

    python -m jobs.serve (--model DIR | --base DIR --adapter DIR --merged DIR) --name NAME --port PORT [--device D]

The portal starts it in the deployment's folder (`DATA_DIR/deployments/<id>`), which gets a link `NAME` to the
model's directory: `transformers serve NAME` then serves the model under that id, the one the portal calls it by.
The server listens on 127.0.0.1 only. The merge goes to a temporary folder first, renamed when complete, so a merge
cut short is never taken for a model. The process replaces itself with the server (same pid), so the portal follows
and stops one process from start to end.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger("jobs.serve")

SERVER = ("import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; "
          "sys.exit(main())")


def merged_model(base: Path, adapter: Path, target: Path) -> Path:
    """`target` holding the base with the adapter folded in, merging only when no earlier merge finished."""
    if (target / "config.json").is_file():
        log.info("using the merged model in %s", target)
        return target
    from jobs.recipes.lora import merge_adapter

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log.info("merging the adapter %s into %s", adapter, base)
    merge_adapter(base, adapter, partial)
    partial.rename(target)
    log.info("merged into %s", target)
    return target


def link(name: str, model: Path) -> None:
    """`./NAME` → the model's directory (what `transformers serve NAME` loads, and the id it answers to)."""
    here = Path(name)
    if here.is_symlink() or here.exists():
        here.unlink()
    here.symlink_to(model.resolve(), target_is_directory=True)


def server_arguments(name: str, port: int, device: str) -> list[str]:
    return [sys.executable, "-c", SERVER, "serve", name, "--host", "127.0.0.1", "--port", str(port),
            "--device", device]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jobs.serve")
    parser.add_argument("--model", type=Path, help="a model to serve as it is")
    parser.add_argument("--base", type=Path, help="the base model of an adapter")
    parser.add_argument("--adapter", type=Path)
    parser.add_argument("--merged", type=Path, help="where the merged model goes")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.model is not None:
        model = args.model
    elif args.base and args.adapter and args.merged:
        model = merged_model(args.base, args.adapter, args.merged)
        gc.collect()
    else:
        parser.error("give --model, or --base, --adapter and --merged")
    link(args.name, model)
    log.info("serving %s as %s on 127.0.0.1:%d", model, args.name, args.port)
    sys.stdout.flush()
    sys.stderr.flush()
    command = server_arguments(args.name, args.port, args.device)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()

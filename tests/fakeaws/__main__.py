"""Run the fake standalone: `python -m tests.fakeaws --port 0 --time-scale 60 [...]`.

The first stdout line is `FAKEAWS_URL=http://127.0.0.1:PORT` (flushed); then it serves until
SIGINT/SIGTERM. `--config FILE.json` takes any `FakeConfig` keys; flags override it; `--set
key=<json>` sets any other key (e.g. `--set 'rules=[{"match":{"name":"a*"},"behaviour":"oom"}]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys

from .config import FakeConfig, parse_queue_spec
from .server import FakeAWS

FLAGS = {  # flag -> (config key, type)
    "--time-scale": ("time_scale", float), "--seed": ("seed", int),
    "--tps": ("tps_limit", float), "--tps-burst": ("tps_burst", float),
    "--duration-mean": ("duration_mean", float), "--duration-spread": ("duration_spread", float),
    "--retention": ("retention_seconds", float), "--starting": ("starting_seconds", float),
    "--spot-rate": ("spot_rate", float), "--oom-rate": ("oom_rate", float),
    "--app-error-rate": ("app_error_rate", float), "--error-5xx-rate": ("error_5xx_rate", float),
    "--drop-submit-rate": ("drop_submit_response_rate", float),
    "--drop-submit-count": ("drop_submit_response_count", int),
    "--drop-submit-mode": ("drop_submit_mode", str),
    "--throttle-rate": ("throttle_rate", float), "--s3-503-rate": ("s3_503_rate", float),
    "--logs-throttle-rate": ("logs_throttle_rate", float),
    "--log-lines": ("log_lines", int), "--log-page-size": ("log_page_size", int),
}


def build_config(argv: list[str] | None = None) -> tuple[argparse.Namespace, FakeConfig]:
    p = argparse.ArgumentParser(prog="python -m tests.fakeaws", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--config", help="JSON file with FakeConfig keys")
    p.add_argument("--queue", action="append", default=[],
                   help="name[:max_vcpus[:max_instance_memory_mib[:max_instance_vcpus]]]; "
                        "repeatable; replaces the default queue")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    for flag, (_key, typ) in FLAGS.items():
        p.add_argument(flag, type=typ)
    args = p.parse_args(argv)
    data: dict = {}
    if args.config:
        with open(args.config) as fh:
            data.update(json.load(fh))
    for flag, (key, _typ) in FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            data[key] = value
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            data[key] = json.loads(raw)
        except json.JSONDecodeError:
            data[key] = raw
    config = FakeConfig.from_dict(data)
    if args.queue:
        config.queues = [parse_queue_spec(s) for s in args.queue]
    return args, config


async def amain(argv: list[str] | None = None) -> None:
    args, config = build_config(argv)
    gc.set_threshold(50_000, 20, 100)      # 100k jobs = millions of objects: collect less often
    fake = FakeAWS(config, host=args.host, port=args.port)
    url = await fake.start()
    sys.stdout.write(f"FAKEAWS_URL={url}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()


def main() -> None:
    asyncio.run(amain())


if __name__ == "__main__":
    main()

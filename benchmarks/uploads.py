"""Benchmark: one large upload of plain-text essays over real HTTP.

Starts the real server (`grading-app serve`, WORKER_CONCURRENCY=0, as `api.py` does) on
a SQLite file, creates a batch, then sends one POST /api/batches/{id}/jobs carrying
`--files` text files of `--mb` MB each (default 15 x 16 MB = 240 MB, near the 256 MB a
request may carry). Prints the time the request took, files/s, MB/s, and the server's
resident memory before and its peak (VmHWM) after, from /proc/<pid>/status.

    python benchmarks/uploads.py [--files 15] [--mb 16] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from api import machine, memory_kb, serving  # noqa: E402

# Words of an essay, with what real ones hold: punctuation, numbers, accents, dashes
# and table rules (which are not words).
_ESSAY_LINE = (
    "the student argues that photosynthesis is a process of energy conversion in "
    "plants, 1990s data — écologie | and therefore; (see figure 3) -- whereas"
)
_VOCABULARY = tuple(_ESSAY_LINE.split())


def write_essay(path: Path, size: int, seed: int) -> None:
    generator = random.Random(seed)
    lines = [" ".join(generator.choice(_VOCABULARY) for _ in range(14)) for _ in range(20_000)]
    block = ("\n".join(lines) + "\n\n").encode()
    with path.open("wb") as handle:
        written = 0
        while written < size:
            piece = block[: size - written]
            handle.write(piece)
            written += len(piece)


def run(files: int, megabytes: int, scratch: Path) -> int:
    size = megabytes * 1024 * 1024
    essays = scratch / "essays"
    essays.mkdir()
    for number in range(files):
        write_essay(essays / f"essay-{number:03d}.txt", size, number)
    url = f"sqlite:///{scratch / 'grading_app.db'}"
    # The batch names a model; nothing is graded (no workers), but its provider is checked.
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-never-used")
    with serving(url, scratch) as server, httpx.Client(timeout=3600) as client:
        batch = client.post(
            f"{server.base_url}/api/batches",
            json={"name": "Upload benchmark", "prompt": "Grade it.", "models": ["openai:m"]},
        )
        if batch.status_code != 201:
            print(f"batch refused: {batch.status_code} {batch.text[:300]}")
            return 1
        before = memory_kb(server.pid)
        handles = [path.open("rb") for path in sorted(essays.iterdir())]
        try:
            started = time.perf_counter()
            response = client.post(
                f"{server.base_url}/api/batches/{batch.json()['id']}/jobs",
                files=[("files", (h.name.rsplit("/", 1)[-1], h, "text/plain")) for h in handles],
            )
            elapsed = time.perf_counter() - started
        finally:
            for handle in handles:
                handle.close()
        after = memory_kb(server.pid)
    if response.status_code != 201:
        print(f"upload refused: {response.status_code} {response.text[:300]}")
        return 1
    total_mb = files * size / (1024 * 1024)
    queued = sum(1 for f in response.json()["files"] if f["status"] == "queued")
    print(f"Upload of {files} text files x {megabytes} MB ({total_mb:.0f} MB) on {machine()}")
    print(f"  time             {elapsed:8.1f} s   ({queued} documents queued)")
    print(f"  files/s          {files / elapsed:8.2f}")
    print(f"  MB/s             {total_mb / elapsed:8.1f}")
    print(f"  server RSS       {before['VmRSS'] / 1024:8.0f} MB before")
    print(f"  server peak RSS  {after['VmHWM'] / 1024:8.0f} MB during")
    print(f"  peak RSS growth  {(after['VmHWM'] - before['VmRSS']) / 1024:8.0f} MB")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=15)
    parser.add_argument("--mb", type=int, default=16, help="size of each file (MAX_UPLOAD_MB)")
    parser.add_argument("--keep", type=Path, help="work in DIR and leave it")
    options = parser.parse_args()
    if options.keep:
        options.keep.mkdir(parents=True, exist_ok=True)
        return run(options.files, options.mb, options.keep)
    scratch = Path(tempfile.mkdtemp(prefix="ga_upload_bench_"))
    try:
        return run(options.files, options.mb, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""Run every benchmark script in benchmarks/ and write benchmarks/RESULTS.md (command, machine, date).

`python benchmarks/run_all.py [NAME ...]` runs only the scripts whose names contain NAME and prints their
sections without touching RESULTS.md (which always holds a complete run).
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import cpu_description  # noqa: E402


def main() -> None:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name not in ("common.py", "run_all.py"))
    only = sys.argv[1:]
    if only:
        scripts = [s for s in scripts if any(o in s.name for o in only)]
    machine = cpu_description()
    sections = []
    for script in scripts:
        print(f"running {script.name} ...", flush=True)
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        if res.returncode != 0:
            sections.append(f"### {script.name}\n\nFAILED:\n```\n{res.stderr[-3000:]}\n```\n")
            print(res.stderr[-3000:], file=sys.stderr)
        else:
            sections.append(res.stdout)
            print(res.stdout)
    if only:
        return
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# Benchmark results", "",
        "Written by `make bench` (`python benchmarks/run_all.py`); each section is one script in `benchmarks/`.",
        "", f"- date: {now}", f"- machine: {machine['cpu']}, {machine['cores']} cores",
        f"- CPU flags: {machine['flags']}", f"- python {machine['python']}, torch {torch.__version__}", "",
    ]
    (HERE / "RESULTS.md").write_text("\n".join(header + sections) + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()

"""Byte-identity guard: run every command in every format on every spec and write the outputs.

Usage: python tests/tools/json_snapshot.py OUTDIR   (run before and after a refactor, then diff -r).
Formats: forward/backward/check/explain in json, table, markdown, latex, svg and html; explain asks
for the first entry of grad.input. check's JSON carries no timings, so every output is deterministic.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CNNGRAD = str(Path(sys.executable).with_name("cnngrad"))
FORMATS = ("json", "table", "markdown", "latex", "svg", "html")
COMMANDS = ("forward", "backward", "check", "explain")


def _args(command: str, spec: Path, fmt: str) -> list[str]:
    """The command line for one snapshot (explain asks for grad.input's first entry)."""
    extra = ["grad.input[" + ",".join(["0"] * _input_rank(spec)) + "]"] if command == "explain" else []
    return [CNNGRAD, command, str(spec.relative_to(ROOT)), *extra, "--format", fmt]


def _input_rank(spec: Path) -> int:
    """The number of axes of the spec's input, read from backward's JSON (grad.input's nesting)."""
    out = subprocess.run([CNNGRAD, "backward", str(spec), "--format", "json"], capture_output=True, cwd=ROOT)
    value, rank = json.loads(out.stdout)["gradients"]["grad.input"], 0
    while isinstance(value, list):
        value, rank = value[0], rank + 1
    return rank


def main(outdir: str) -> None:
    """Write OUTDIR/<spec>.<command>.<format> (stdout, then stderr and the exit code) for all runs."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    specs = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "tests/errata").glob("*.yaml"))
    for spec in specs:
        for command in COMMANDS:
            for fmt in FORMATS:
                run = subprocess.run(_args(command, spec, fmt), capture_output=True, cwd=ROOT)
                name = f"{spec.parent.name}_{spec.stem}.{command}.{fmt}"
                (out / name).write_bytes(run.stdout + b"\n--- stderr ---\n" + run.stderr + f"\n--- exit {run.returncode}\n".encode())


if __name__ == "__main__":
    main(sys.argv[1])

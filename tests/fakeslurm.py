"""A stand-in for SLURM's commands, enough for submitit: `sbatch` records each submission and runs the
array's tasks one after another in the background (with the SLURM_* variables a task sees), `srun`
runs its command with the output files SLURM would open, and `sacct`/`scancel`/`scontrol` answer
nothing. Tests read the submissions in BIN/sbatch.log."""

from __future__ import annotations

import sys
from pathlib import Path

JOB_ID = "4242"

SBATCH = """#!PYTHON
import os, re, subprocess, sys
script = sys.argv[-1]
text = open(script).read()
with open(os.path.join(os.path.dirname(sys.argv[0]), "sbatch.log"), "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n" + text + "\\n----\\n")
match = re.search(r"^#SBATCH --array=0-(\\d+)", text, re.M)
tasks = range(int(match.group(1)) + 1) if match else [None]
runner = "; ".join(
    f"SLURM_JOB_ID=@JOB@{'' if i is None else i} "
    + ("" if i is None else f"SLURM_ARRAY_JOB_ID=@JOB@ SLURM_ARRAY_TASK_ID={i} ")
    + f"SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NODEID=0 SLURM_NTASKS=1 SLURM_JOB_NUM_NODES=1 bash {script}"
    for i in tasks
)
subprocess.Popen(["bash", "-c", runner], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("Submitted batch job @JOB@")
"""

SRUN = """#!PYTHON
import os, sys
args, files = sys.argv[1:], {}
while args and args[0].startswith("--"):
    flag = args.pop(0)
    if flag in ("--output", "--error"):
        files[flag] = args.pop(0)
names = {"%A": os.environ.get("SLURM_ARRAY_JOB_ID", ""), "%a": os.environ.get("SLURM_ARRAY_TASK_ID", ""),
         "%j": os.environ["SLURM_JOB_ID"], "%t": "0"}
for flag, fd in (("--output", 1), ("--error", 2)):
    if flag in files:
        path = files[flag]
        for code, value in names.items():
            path = path.replace(code, value)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), fd)
os.execvp(args[0], args)
"""

SILENT = "#!/bin/sh\nexit 0\n"


def install(bin_dir: Path) -> Path:
    """Write the commands into `bin_dir` (put it first on PATH); return the submissions' log."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    scripts = {"sbatch": SBATCH.replace("@JOB@", JOB_ID), "srun": SRUN}
    for name, text in {**scripts, "sacct": SILENT, "scancel": SILENT, "scontrol": SILENT}.items():
        path = bin_dir / name
        path.write_text(text.replace("#!PYTHON", f"#!{sys.executable}"))
        path.chmod(0o755)
    return bin_dir / "sbatch.log"

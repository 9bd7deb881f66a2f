"""Learning curves: validation accuracy vs step, one figure per task, one line per condition.

Each line is the mean over the seeds of the condition's chosen learning rate; the band spans the
lowest and highest seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpt.runs.record import read_metrics


def plot_curves(cells, out: Path) -> list[Path]:
    import matplotlib  # deferred: matplotlib is slow to import and only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task in dict.fromkeys(c.task for c in cells):
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for cell in (c for c in cells if c.task == task):
            curves = [read_metrics(d) for d in cell.run_dirs]
            curves = [c for c in curves if c]
            if not curves:
                continue
            length = min(len(c) for c in curves)  # early-stopped seeds end sooner: plot the common part
            steps = [m["step"] for m in curves[0][:length]]
            values = np.array([[100 * m["val_accuracy"] for m in c[:length]] for c in curves])
            (line,) = ax.plot(steps, values.mean(axis=0), label=f"{cell.condition} (lr {cell.lr:g}, n={len(curves)})")
            ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
            drawn = True
        if drawn:
            ax.set(title=task, xlabel="step", ylabel="validation accuracy (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            path = out / f"{task}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=120)
            written.append(path)
        plt.close(fig)
    return written

"""Learning curves: validation accuracy vs step, one figure per task, one line per condition.

Each line is the mean over the seeds of the condition's chosen learning rate; the band spans the
lowest and highest seed; a dot marks each seed's last evaluation (runs that stop at a plateau end early).
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
            # early-stopped seeds end sooner: each step's mean and band are over the seeds still running there,
            # and a dot marks where each seed stopped, so a plateau (or a cut-off) shows
            key, scale = ("val_accuracy", 100) if not cell.lower_is_better else (f"val_{cell.metric}", 1)
            by_step: dict[int, list[float]] = {}
            for curve in curves:
                for m in curve:
                    by_step.setdefault(m["step"], []).append(scale * m[key])
            steps = sorted(by_step)
            (line,) = ax.plot(
                steps, [np.mean(by_step[s]) for s in steps], label=f"{cell.condition} (lr {cell.lr:g}, n={len(curves)})"
            )
            low, high = [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps]
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
            ends = [(c[-1]["step"], scale * c[-1][key]) for c in curves]
            ax.plot(*zip(*ends, strict=True), "o", color=line.get_color(), markersize=3)
            drawn = True
        if drawn:
            lower = any(c.lower_is_better for c in cells if c.task == task)
            label = f"validation {cells[0].metric.upper()}" if lower else "validation accuracy (%)"
            ax.set(title=task, xlabel="step", ylabel=label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            path = out / f"{task}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=120)
            written.append(path)
        plt.close(fig)
    return written

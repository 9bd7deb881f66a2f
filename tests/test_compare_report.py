"""`fpt compare` and `fpt report`: the comparison table and plot, and HTML reports checked in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from fpt import RunConfig, train
from fpt.cli import main
from fpt.experiments.sweep import expand
from fpt.experiments.tables import write_results

QUIET = dict(progress=False, log=lambda *a: None)
SETTINGS = {"steps": 10, "eval_every": 5, "batch_size": 8, "task_options": {"val_size": 32, "test_size": 32}}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, quiet_gpt2) -> Path:
    """A small sweep's directory (2 inits x 2 seeds), trained in this process and tabulated as `fpt sweep` does."""
    out = tmp_path_factory.mktemp("compare") / "sweep"
    grid = expand(
        {
            "tasks": ["bit-xor"],
            "seeds": [0, 1],
            "lrs": [1e-3],
            "backbones": [quiet_gpt2],
            "inits": ["pretrained", "random"],
            "settings": SETTINGS,
        }
    )
    records = []
    for run in grid.runs:
        run_dir = out / "runs" / run.key
        summary = train(RunConfig.from_dict({**run.config, "out": str(run_dir)}, "test"), **QUIET)
        records.append({"key": run.key, "status": "finished", "run_dir": str(run_dir), "summary": summary})
    write_results(grid, records, out)
    return out


def test_compare_table_and_plot_from_a_glob(sweep_dir, tmp_path, capsys):
    assert main(["compare", str(sweep_dir / "runs/bit-xor/*/lr0.001/s0"), "--out", str(tmp_path / "cmp.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0].split()
        == "run task backbone init policy steps status test accuracy best val trainable params wall s".split()
    )
    assert len(lines) == 3 and {line.split()[3] for line in lines[1:]} == {"pretrained", "random"}
    summary = json.loads((sweep_dir / "runs/bit-xor/random/lr0.001/s0/summary.json").read_text())
    assert f"{summary['test_accuracy']:.4f}" in lines[2] and f"{summary['trainable_params']:,}" in lines[2]
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_takes_a_sweep_directory_and_names_bad_arguments(sweep_dir, tmp_path, capsys):
    assert main(["compare", str(sweep_dir), "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 4
    assert main(["compare", str(tmp_path / "nothing-*")]) == 2
    assert "matches no directory" in capsys.readouterr().err
    assert (
        main(["compare", str(sweep_dir / "runs/bit-xor"), "--metric", "val_f1", "--out", str(tmp_path / "x.png")]) == 2
    )
    assert "recorded metrics: " in capsys.readouterr().err


# -- headless Chromium -------------------------------------------------------------------------------
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# What the page shows once rendered: tables with their rows, and images that decoded.
PROBE = """return {
  tables: Array.from(document.querySelectorAll('table')).map(t => [t.className, t.rows.length]),
  images: Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]),
  headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
  external: Array.from(document.querySelectorAll('[src],[href]')).map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !u.startsWith('data:')),
};"""


def _webdriver(port: int, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["value"]


def render(page: Path, profile: Path) -> dict:
    """Open `page` in headless Chromium (through chromedriver's WebDriver API) and run PROBE on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = subprocess.Popen([DRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                _webdriver(port, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        options = {"binary": CHROMIUM, "args": [*FLAGS, f"--user-data-dir={profile}"]}
        session = _webdriver(
            port,
            "POST",
            "/session",
            {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}},
        )["sessionId"]
        try:
            _webdriver(port, "POST", f"/session/{session}/url", {"url": page.resolve().as_uri()})
            return _webdriver(port, "POST", f"/session/{session}/execute/sync", {"script": PROBE, "args": []})
        finally:
            _webdriver(port, "DELETE", f"/session/{session}")
    finally:
        driver.terminate()
        driver.wait(timeout=30)


needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium chromium-driver, as .ci/run does)",
)


@pytest.mark.slow
@needs_chromium
def test_run_report_renders_in_headless_chromium(sweep_dir, tmp_path, capsys):
    run_dir = sweep_dir / "runs/bit-xor/pretrained/lr0.001/s0"
    assert main(["report", str(run_dir), "--out", str(tmp_path / "run.html")]) == 0
    page = render(tmp_path / "run.html", tmp_path / "profile")
    assert page["headings"] == ["Summary", "Curves", "Freeze report", "Config", "Model config"]
    tables = dict(page["tables"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert tables["summary"] == 1 + len(summary)
    assert [alt for alt, *_ in page["images"]] == [
        "val_accuracy vs step",
        "val_exact_match vs step",
        "train_loss vs step",
    ]
    assert all(complete and width > 0 for _, complete, width in page["images"])  # every image decoded
    assert page["external"] == []  # self-contained
    assert re.search(r"trained [\d,]+ of [\d,]+ parameters", (tmp_path / "run.html").read_text())  # freeze report


@pytest.mark.slow
@needs_chromium
def test_sweep_report_renders_in_headless_chromium(sweep_dir, tmp_path):
    assert main(["report", str(sweep_dir), "--out", str(tmp_path / "sweep.html")]) == 0
    page = render(tmp_path / "sweep.html", tmp_path / "profile")
    assert page["headings"] == ["Results", "Plots", "Runs", "Validation curves", "results.md"]
    tables = dict(page["tables"])
    assert tables["results"] == 1 + 2 and tables["runs"] == 1 + 4  # two conditions; four runs
    assert [alt for alt, *_ in page["images"]] == ["bit-xor", "validation accuracy vs step"]
    assert all(complete and width > 0 for _, complete, width in page["images"])
    assert page["external"] == []


@pytest.mark.slow
@needs_chromium
def test_report_of_several_runs_renders_in_headless_chromium(sweep_dir, tmp_path):
    runs = [str(sweep_dir / "runs/bit-xor/pretrained/lr0.001/s0"), str(sweep_dir / "runs/bit-xor/random/lr0.001/*")]
    assert main(["report", *runs, "--out", str(tmp_path / "runs.html")]) == 0
    page = render(tmp_path / "runs.html", tmp_path / "profile")
    assert page["headings"] == ["Runs", "Curves", "Summaries"]
    tables = dict(page["tables"])
    assert tables["runs"] == 1 + 3  # one run, and two from the glob
    assert [alt for alt, *_ in page["images"]] == ["validation accuracy vs step", "train loss vs step"]
    assert all(complete and width > 0 for _, complete, width in page["images"])
    assert page["external"] == []


def test_report_tables_hold_no_python_reprs_nor_a_repeated_exact_match(sweep_dir, tmp_path, quiet_gpt2):
    import torch

    from fpt import TensorTask

    x = torch.randn(80, 6, 4)
    y = (x[:, :, 0].sum(1) > 0).long()
    task = TensorTask((x[:48], y[:48]), (x[48:64], y[48:64]), (x[64:], y[64:]))  # one unit per example
    config = RunConfig(backbone=quiet_gpt2, steps=4, eval_every=2, batch_size=8, out=str(tmp_path / "one"))
    train(config, task=task, **QUIET)
    several = sweep_dir / "runs/bit-xor/pretrained/lr0.001/s0"  # five units per example
    assert main(["report", str(tmp_path / "one"), str(several), "--out", str(tmp_path / "r.html")]) == 0
    assert main(["report", str(tmp_path / "one"), "--out", str(tmp_path / "one.html")]) == 0
    both, one = (tmp_path / "r.html").read_text(), (tmp_path / "one.html").read_text()
    for page in (both, one):
        assert "{&#x27;" not in page and "[&#x27;" not in page and "{'" not in page  # no dict or list reprs
    assert "<td>metric_names</td><td>accuracy: accuracy; exact_match: exact match</td>" in one
    assert "test_exact_match" not in one and "val_exact_match vs step" not in one  # it would repeat the accuracy
    assert both.count("<td>test_exact_match</td>") == 1  # the bit-xor run's, where it differs


def test_report_of_something_else_is_refused(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "neither a run directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["report", "{run}", "--out", "{run}/summary.json"],
            "this writes an HTML report; give a file name ending in .html",
        ),
        (["compare", "{run}", "--out", "{run}/config.yaml"], "this writes a PNG plot; give a file name ending in .png"),
        (["report", "{run}", "--out", "{run}/report.html"], "lies inside the run directory"),
        (["compare", "{run}", "--out", "{run}/checkpoints/curves.png"], "lies inside the run directory"),
        (["compare", "{run}", "--out", "{here}"], "give a file name ending in .png"),
    ],
)
def test_report_and_compare_never_write_over_a_run(sweep_dir, tmp_path, capsys, argv, said):
    run_dir = sweep_dir / "runs/bit-xor/pretrained/lr0.001/s0"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    argv = [a.format(run=run_dir, here=tmp_path) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert said in captured.err and captured.out == ""  # refused before the table is printed
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_an_empty_out_is_refused_naming_the_extension(tmp_path, capsys):
    """Found by the fuzz run: `fpt report RUN --out ''` ended in pathlib's ValueError."""
    assert main(["report", str(tmp_path), "--out", ""]) == 2
    assert "give a file name ending in .html or .htm (e.g. out.html)" in capsys.readouterr().err

"""Why task batches gather rows with `index_select`: the cost of taking 16 random rows of an
MNIST-sized uint8 tensor (60000 x 1 x 28 x 28) by advanced indexing vs `index_select`, on this CPU,
with 1 torch thread and with 2 (advanced indexing's CPU kernel is what multithreading slows).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/index_rows.py
"""

from __future__ import annotations

import time

import torch


def per_call_ms(take, repeats: int) -> float:
    take()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        take()
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    images = torch.randint(0, 256, (60_000, 1, 28, 28), dtype=torch.uint8)
    index = torch.randperm(60_000, generator=torch.Generator().manual_seed(0))[:16]
    assert torch.equal(images[index], images.index_select(0, index))
    print(f"torch {torch.__version__}: 16 random rows of a 60000 x 1 x 28 x 28 uint8 tensor, ms per call")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        advanced = per_call_ms(lambda: images[index], 20)
        selected = per_call_ms(lambda: images.index_select(0, index), 2000)
        print(
            f"{threads} thread(s): advanced indexing {advanced:.3f}, index_select {selected:.4f} ({advanced / selected:.0f}x)"
        )


if __name__ == "__main__":
    main()

"""English prose that every machine with this Python has, offline: the topic texts behind `help()`.

`pydoc_data.topics` ships with CPython itself (Python's reference documentation, one text per
topic such as `assignment` or `exceptions`), so alignment (fpt.training.align) needs no download
and no extra package. Indented lines (code examples, grammar rules) and heading underlines are
dropped: what remains is running English. The topic names serve as the text's class labels.
"""

from __future__ import annotations

import re

_UNDERLINE = re.compile(r"^[*=\-~^]{3,}$")


def prose_by_topic() -> dict[str, str]:
    """Each help topic's running prose (code and grammar lines removed), by topic name."""
    from pydoc_data.topics import topics

    texts = {}
    for name, text in sorted(topics.items()):
        lines = [line for line in text.splitlines() if line and not line[0].isspace() and not _UNDERLINE.match(line)]
        texts[name] = " ".join(lines)
    return texts


def largest_topics(count: int) -> dict[str, str]:
    """The `count` topics with the most prose, largest first (ties by name)."""
    texts = prose_by_topic()
    names = sorted(texts, key=lambda n: (-len(texts[n]), n))[:count]
    return {n: texts[n] for n in names}

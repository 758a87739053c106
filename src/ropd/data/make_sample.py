"""Generate the bundled sample dataset: short arithmetic word problems with exact integer answers.

The file is made, not collected, so its answers are known to be right and it can ship with the
package. Run `python -m ropd.data.make_sample` to rewrite `sample_math.jsonl` (seeded: the same
file every time).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

SEED = 20240
SIZE = 40
NAMES = ["Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Ivy", "Jon", "Kim", "Leo", "Mia"]
ITEMS = ["apples", "pens", "books", "coins", "stamps", "marbles", "cards", "shells"]

Problem = tuple[str, int]


def _add(rng: random.Random) -> Problem:
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    return f"What is {a} + {b}?", a + b


def _sub(rng: random.Random) -> Problem:
    a = rng.randint(10, 60)
    b = rng.randint(1, a - 1)
    return f"What is {a} - {b}?", a - b


def _mul(rng: random.Random) -> Problem:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"What is {a} * {b}?", a * b


def _buy_more(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(2, 20), rng.randint(2, 20)
    return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have?", a + b


def _give_away(rng: random.Random) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a = rng.randint(5, 30)
    b = rng.randint(1, a - 1)
    return f"{name} has {a} {item} and gives away {b}. How many {item} are left?", a - b


def _boxes(rng: random.Random) -> Problem:
    item = rng.choice(ITEMS)
    boxes, per_box = rng.randint(2, 6), rng.randint(2, 9)
    return f"There are {boxes} boxes with {per_box} {item} in each. How many {item} in total?", (
        boxes * per_box
    )


def _share(rng: random.Random) -> Problem:
    item = rng.choice(ITEMS)
    friends, each = rng.randint(2, 5), rng.randint(2, 8)
    total = friends * each
    return f"{total} {item} are shared equally by {friends} friends. How many does each get?", each


KINDS: list[Callable[[random.Random], Problem]] = [
    _add,
    _sub,
    _mul,
    _buy_more,
    _give_away,
    _boxes,
    _share,
]


def make_rows(size: int = SIZE, seed: int = SEED) -> list[dict[str, object]]:
    """`size` distinct problems, cycling through the kinds so every kind is represented."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    while len(rows) < size:
        question, answer = KINDS[len(rows) % len(KINDS)](rng)
        if question in seen:
            continue
        seen.add(question)
        prompt = f"{question} Answer with a number."
        rows.append({"id": f"math-{len(rows):03d}", "prompt": prompt, "answer": answer})
    return rows


def write_sample(path: Path, size: int = SIZE, seed: int = SEED) -> Path:
    """Write the rows as JSONL (one object a line) and return the path."""
    lines = [json.dumps(row, ensure_ascii=False) for row in make_rows(size, seed)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    target = write_sample(Path(__file__).with_name("sample_math.jsonl"))
    print(f"wrote {target}")

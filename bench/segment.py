"""Segmentation time on the inputs that once made it slow (the timings tests do not assert).

    nice -n 19 .venv/bin/python bench/segment.py [--repeat 5]

Each input is about 5,000 characters built to stress one part of :func:`srm.segment.segment`:
abbreviations and initials (Punkt's look-ahead), runs of periods, many short sentences, list
lines, a fenced code block, and one run-on sentence split at whitespace. Each should take well
under a second, so that no response stalls scoring; tests/srm/test_segment.py checks that these
inputs segment correctly, and this script says how long they take here.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from srm.segment import DEFAULT_MAX_CHARS, segment

INPUTS = {
    "abbreviations": ("e.g. " * 1000, DEFAULT_MAX_CHARS),
    "initials": ("a. " * 1700, DEFAULT_MAX_CHARS),
    "periods": ("." * 5000, DEFAULT_MAX_CHARS),
    "short-sentences": ("Yes! " * 1000, DEFAULT_MAX_CHARS),
    "list-lines": ("- item\n" * 700, DEFAULT_MAX_CHARS),
    "code": ("```\n" + "x = 1.\n\n" * 600 + "```", DEFAULT_MAX_CHARS),
    "run-on sentence": (" ".join(f"word{i}" for i in range(1000))[:5000], 400),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5, help="Timed runs per input.")
    args = parser.parse_args()
    segment("Warm up.")  # loads the Punkt parameters once
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{'input':<18} {'chars':>6} {'spans':>6} {'median ms':>10} {'max ms':>8}")
    for name, (text, max_chars) in INPUTS.items():
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            spans = segment(text, max_chars=max_chars)
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"{name:<18} {len(text):>6} {len(spans):>6} "
            f"{statistics.median(times):>10.1f} {max(times):>8.1f}"
        )


if __name__ == "__main__":
    main()

"""Log masking throughput: what masking declared secrets costs on the runner's log path.

Feeds the same 64 KiB chunks of typical log lines (a few of them holding a secret) through
`Masker.stream()`, as the runner does for each action's log pipe, and compares, in the same run:

- no secrets declared (the masker passes chunks through): the cost every run pays;
- one plain secret;
- four secrets, one a 28-line PEM key (its lines and their encodings: 55 spellings in all);
- baseline: `bytes.replace` of the plain value alone (the former exact-match masking), no stream.

    python bench/bench_masking.py            # 64 MiB per variant, median of 5
    python bench/bench_masking.py --mib 16 -r 3
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import time
from collections.abc import Callable

from flyte_decl.masking import Masker

PLAIN = "plain-8d2f7c1e9b"
# A 2048-bit RSA key's shape: 26 lines of 64 base64 characters between the armour lines.
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    + "".join(base64.b64encode(random.Random(n).randbytes(48)).decode() + "\n" for n in range(26))
    + "-----END PRIVATE KEY-----\n"
)
SECRETS = [PLAIN, PEM, 'q"uo\\te-é€-ünï', "hidden42"]


def chunks(mib: int) -> list[bytes]:
    lines = [
        f"2026-01-01 12:00:{i % 60:02d} INFO step {i}: processed 128 records in 0.{i % 97:02d}s\n"
        for i in range(4000)
    ]
    lines[::500] = [f"using token {PLAIN} for the upload\n"] * len(lines[::500])
    text = "".join(lines).encode()
    size = 64 * 1024
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return (pieces * (mib * 1024 * 1024 // len(text) + 1))[: mib * 16]


def through(masker: Masker) -> Callable[[list[bytes]], int]:
    def run(data: list[bytes]) -> int:
        stream = masker.stream()
        total = sum(len(stream.feed(chunk)) for chunk in data)
        return total + len(stream.close() or b"")

    return run


def replace_only(data: list[bytes]) -> int:
    secret, mask = PLAIN.encode(), b"****"
    return sum(len(chunk.replace(secret, mask)) for chunk in data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("-r", "--repeat", type=int, default=5)
    args = parser.parse_args()
    data = chunks(args.mib)
    size = sum(map(len, data)) / 2**20
    variants = {
        "no secrets declared": through(Masker()),
        "1 plain secret": through(Masker([PLAIN])),
        "4 secrets, one a PEM key": through(Masker(SECRETS)),
        "bytes.replace of 1 value (baseline)": replace_only,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):  # alternate, so that load on the machine hits every variant alike
        for name, run in variants.items():
            start = time.perf_counter()
            run(data)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["bytes.replace of 1 value (baseline)"])
    print(f"{size:.0f} MiB in 64 KiB chunks, median of {args.repeat}\n")
    print(f"{'variant':<38}{'MiB/s':>9}{'vs baseline':>13}")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"{name:<38}{size / median:>9.0f}{median / base:>12.2f}x")


if __name__ == "__main__":
    main()

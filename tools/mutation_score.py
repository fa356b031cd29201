"""make mutation's summary: per module, how many of mutmut's mutants the pure tests killed, and which survived.

Reads what `mutmut run` left in mutants/ (a .meta file per mutated module). Runs in .venv-mutation, beside mutmut,
whose own table says which exit code of a mutant's test run means what.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

MUTANTS = Path("mutants")
COLUMNS = ("killed", "survived", "timeout", "no tests", "other")


def statuses(meta: Path) -> dict[str, str]:
    """Mutant name -> mutmut's status of it ("killed", "survived", "timeout", "no tests", ...)."""
    exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in exit_codes.items()}


def column(status: str) -> str:
    return status if status in COLUMNS else "other"


def main() -> int:
    metas = sorted(MUTANTS.rglob("*.py.meta"))
    if not metas:
        print("no mutation results in mutants/: run `make mutation`", file=sys.stderr)
        return 1
    rows: list[tuple[str, Counter[str]]] = []
    survivors: list[str] = []
    untested: Counter[str] = Counter()
    for meta in metas:
        by_name = statuses(meta)
        rows.append((str(meta.relative_to(MUTANTS)).removesuffix(".meta"), Counter(map(column, by_name.values()))))
        survivors += sorted(name for name, status in by_name.items() if status == "survived")
        # The function a mutant is in: mutmut names it module.x_function__mutmut_N (methods: xǁClassǁmethod).
        untested.update(name.rsplit("__mutmut_", 1)[0] for name, status in by_name.items() if status == "no tests")
    rows.append(("all", sum((counts for _, counts in rows), Counter())))
    print(f"{'module':40}", *(f"{c:>8}" for c in (*COLUMNS, "total", "score")))
    for module, counts in rows:
        tested = sum(counts.values()) - counts["no tests"]
        score = f"{100 * (counts['killed'] + counts['timeout']) / tested:.1f}%" if tested else "-"
        print(f"{module:40}", *(f"{counts[c]:>8}" for c in COLUMNS), f"{sum(counts.values()):>8}", f"{score:>8}")
    print("score: killed and timed out, of the mutants some pure test runs (no tests: no pure test reaches the code)")
    if untested:
        print("\nno pure test reaches (mutants):")
        for function, count in sorted(untested.items()):
            print(f"  {function} ({count})")
    if survivors:
        print(f"\nsurvived ({len(survivors)}); see one with .venv-mutation/bin/mutmut show NAME:")
        for name in survivors:
            print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

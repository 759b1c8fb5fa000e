"""Fuzz figures for the issue's closing note: every listed tool, valid and invalid arguments generated from its
own inputSchema (the generators of tests/test_fuzz.py), through a real MCP client session against the sandbox.

    .venv/bin/python benchmarks/fuzz_report.py [--examples 100] [--seed 0] [--legacy] [--failures 20]

Per tool and in total: examples tried (valid / invalid), valid results, isError answers to valid arguments
(of which cross-argument rule refusals), crashes (goal 0), requests sent for invalid input (goal 0), planted
secrets found in answers (goal 0), unclear answers (goal 0). Exit status 1 if any goal is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_fuzz import (
    Harness,
    Mutation,
    Tally,
    arguments_strategy,
    fuzz_session,
    invalid_arguments,
    run_invalid,
    run_valid,
)


def collect(strategy: st.SearchStrategy[Any], count: int, at: int) -> list[Any]:
    """`count` examples drawn by hypothesis (fewer when the space is smaller), reproducibly from `at`."""
    drawn: list[Any] = []

    @seed(at)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def gather(value: Any) -> None:
        drawn.append(value)

    gather()
    return drawn


async def fuzz_tool(h: Harness, tool: str, count: int, at: int) -> Tally:
    tally = Tally()
    schema = h.tools[tool].input_schema
    h.sandbox.reset()
    for args in collect(arguments_strategy(schema), count, at):
        await run_valid(h, tool, args, tally)
    mutations: list[Mutation] = collect(invalid_arguments(schema), count, at + 1)
    for mutation in mutations:
        await run_invalid(h, tool, mutation, tally)
    return tally


async def main(count: int, at: int, mode: str, show: int) -> int:
    started = time.perf_counter()
    totals = Tally()
    rows: list[tuple[str, Tally]] = []
    async with fuzz_session(mode) as h:
        for tool in h.tools:
            tally = await fuzz_tool(h, tool, count, at)
            rows.append((tool, tally))
    head = f"{'tool':28} {'valid':>5} {'inval':>5} {'ok':>4} {'err':>4} {'rule':>4} {'crash':>5} {'req!':>4} "
    print(head + f"{'secr':>4} {'uncl':>4}")
    for tool, t in rows:
        print(
            f"{tool:28} {t.valid:5} {t.invalid:5} {t.results:4} {t.tool_errors:4} {t.rule_refusals:4} "
            f"{t.crashes:5} {t.requests_for_invalid:4} {t.secrets_found:4} {t.unclear:4}"
        )
        for name in ("valid", "invalid", "results", "tool_errors", "rule_refusals", "crashes"):
            setattr(totals, name, getattr(totals, name) + getattr(t, name))
        totals.requests_for_invalid += t.requests_for_invalid
        totals.secrets_found += t.secrets_found
        totals.unclear += t.unclear
        totals.failures += t.failures
    seconds = time.perf_counter() - started
    print(
        f"\n{len(rows)} tools ({mode} era), up to {count} valid + {count} invalid examples per tool, seed {at}: "
        f"{totals.valid + totals.invalid} examples ({totals.valid} valid, {totals.invalid} invalid) in {seconds:.0f}s"
    )
    print(
        f"valid: {totals.results} results, {totals.tool_errors} tool errors "
        f"({totals.rule_refusals} cross-argument rule refusals)"
    )
    print(
        f"crashes: {totals.crashes}   requests sent for invalid input: {totals.requests_for_invalid}   "
        f"secrets found in output: {totals.secrets_found}   unclear answers: {totals.unclear}"
    )
    for line in totals.failures[:show]:
        print("  -", line[:400])
    missed = totals.crashes + totals.requests_for_invalid + totals.secrets_found + totals.unclear
    return 1 if missed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="valid and invalid examples per tool (each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--legacy", action="store_true", help="the 2025-11-25 handshake era instead of 2026-07-28")
    parser.add_argument("--failures", type=int, default=20, help="how many failure lines to print")
    opts = parser.parse_args()
    sys.exit(anyio.run(main, opts.examples, opts.seed, "legacy" if opts.legacy else "auto", opts.failures))

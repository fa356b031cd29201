"""What `make bench` shows on the terminal: a progress bar per long part, and one table of the figures at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], what: str, total: int | None = None) -> Iterator[T]:
    """A progress bar on the terminal (stderr) for one long part; none when stderr is not a terminal."""
    return iter(tqdm(items, desc=f"  {what}", total=total, leave=False, unit="", dynamic_ncols=True, disable=None))


Row = tuple[str, str, str]


def table(results: dict[str, Any]) -> str:
    """One table of the figures of the parts that ran."""
    rows: list[Row] = [("figure", "result", "note")]
    for part, part_rows in ROWS:
        if part in results:
            rows += part_rows(results[part])
    width = max(len(r[0]) for r in rows)
    lines = [f"  {name:<{width}}  {value:>16}  {note}" for name, value, note in rows]
    lines.insert(1, f"  {'-' * width}  {'-' * 16}  {'-' * max(len(r[2]) for r in rows)}")
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def cold_start_rows(cold: dict[str, Any]) -> list[Row]:
    return [
        (
            "cold start: import app / import boto3",
            f"{cold['ratio_median']}x",
            f"<= 1.25x {verdict(cold['ratio_median'] <= 1.25)}",
        )
    ]


def per_host_rows(figures: dict[str, Any]) -> list[Row]:
    host, polling = figures["per_host"], figures["lambda_time_vs_polling"]
    return [
        ("per host: AWS calls", f"{host['aws_calls']}", f"<= 6 {verdict(host['aws_calls'] <= 6)}"),
        ("per host: own time", f"{host['own_ms']} ms", f"<= 5 ms {verdict(host['own_ms'] <= 5)}"),
        ("Lambda time, polling / event-driven", f"{polling['ratio_polling_to_event_driven']}x", "higher is better"),
    ]


def burst_rows(burst: dict[str, Any]) -> list[Row]:
    return [
        ("burst: decided CONTINUE", f"{burst['continued']} / {burst['hosts']}", "all"),
        (
            "burst: duplicate commands / decisions",
            f"{burst['duplicate_commands']} / {burst['duplicate_decisions']}",
            "0 / 0",
        ),
        ("burst: AWS calls, throttled", f"{burst['aws_calls']}, {burst['throttled_requests']}", ""),
        ("burst: hosts per second", f"{burst['hosts_per_second']}", "this machine"),
    ]


def task_definitions_rows(tds: dict[str, Any]) -> list[Row]:
    return [
        ("task definitions: revisions added", f"{tds['revisions_added']} / {tds['registrations']}", "exactly"),
        (
            "task definitions: calls, own time",
            f"{tds['aws_calls_per_rewrite']}, {tds['own_ms_per_rewrite']} ms",
            "per rewrite",
        ),
    ]


def checks_rows(checks: dict[str, Any]) -> list[Row]:
    return [
        (
            f"checks: {checks['groups']} groups, {checks['accounts']} accounts: calls per group",
            f"{checks['aws_calls_per_group']}",
            f"{checks['aws_calls']} calls, {checks['problems']} problems",
        ),
        (
            "checks: hourly run, projected",
            f"{checks['projected_seconds']} s",
            f"timeout {checks['timeout_seconds']} s; ~${checks['monthly_usd']} a month",
        ),
    ]


def package_rows(pkg: dict[str, Any]) -> list[Row]:
    return [
        (
            "package: deployment.zip, shipped / without SDK",
            f"{pkg['deployment_zip_kib']} / {pkg['without_sdk_zip_kib']} KiB",
            f"{pkg['zip_ratio']}x",
        ),
        (
            "package: unpack + import app, shipped / without SDK",
            f"{pkg['cold_ratio_shipped_to_without_sdk']}x",
            f"import alone {pkg['import_ratio_shipped_to_without_sdk']}x",
        ),
    ]


def scale_out_rows(figures: dict[str, Any]) -> list[Row]:
    """The scale-out's figures, the new design's with today's beside them (simulated seconds)."""
    today = figures["today"]
    size = f"scale-out {figures['hosts']}"

    def beside(key: str) -> str:
        return "today: skipped" if "skipped" in today else f"today {today.get(key)}"

    def goal(key: str) -> str:
        value, limit = figures.get(key), figures["goals"][key]
        return f"<= {limit} {verdict(value is not None and value <= limit)}; {beside(key)}"

    return [
        (f"{size}: added latency p50, s", f"{figures['added_latency_p50_s']}", goal("added_latency_p50_s")),
        (f"{size}: added latency p95, s", f"{figures['added_latency_p95_s']}", goal("added_latency_p95_s")),
        (f"{size}: AWS calls per host", f"{figures['aws_calls_per_host']}", goal("aws_calls_per_host")),
        (
            "scale-out: one host alone, calls (warm)",
            f"{figures['single_host_aws_calls']}",
            goal("single_host_aws_calls"),
        ),
        (
            "scale-out: one host alone, calls (cold)",
            f"{figures['single_host_aws_calls_cold']}",
            beside("single_host_aws_calls_cold"),
        ),
        (
            f"{size}: launch to in service p50 / p95, s",
            f"{figures['launch_to_in_service_p50_s']} / {figures['launch_to_in_service_p95_s']}",
            f"floor {figures['floor_p50_s']} / {figures['floor_p95_s']}; "
            + (
                "today: skipped"
                if "skipped" in today
                else f"today {today['launch_to_in_service_p50_s']} / {today['launch_to_in_service_p95_s']}"
            ),
        ),
        (
            f"{size}: CONTINUE / timed out / dup. commands / dup. decisions",
            f"{figures['continued']} / {figures['timed_out']} / {figures['duplicate_commands']} / "
            f"{figures['duplicate_decisions']}",
            f"all / 0 / 0 / 0; simulated, {figures['throttled_share']:.0%} throttled",
        ),
    ]


def repair_rows(repair: dict[str, Any]) -> list[Row]:
    size = f"{repair['hosts']} hosts, {repair['services']} services"
    rows = []
    for name in ("dry_run", "repair", "second_run"):
        run = repair[name]
        rows.append(
            (
                f"repair, {size}: {name.replace('_', ' ')}",
                f"{run['aws_calls']} calls, {run['seconds_local']} s",
                f"~{run['projected_seconds']} s on AWS; timeout 900 s",
            )
        )
    return rows


# The parts' rows, in the table's order.
ROWS: tuple[tuple[str, Callable[[dict[str, Any]], list[Row]]], ...] = (
    ("cold_start", cold_start_rows),
    ("per_host", per_host_rows),
    ("burst", burst_rows),
    ("task_definitions", task_definitions_rows),
    ("repair", repair_rows),
    ("checks", checks_rows),
    ("package", package_rows),
    ("scale_out", scale_out_rows),
)

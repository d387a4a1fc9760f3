"""How long the whole program takes to evaluate under mocks, next to the SDK's floor, by fleet size.

Run: .venv/bin/python bench/program_eval.py [--sizes 3,30,100] [--repeat 1] [--preview]

Each measurement runs in a fresh interpreter that first evaluates a small fleet once (so every
SDK module is imported), then times one evaluation of the fleet measured; what the program
keeps from one evaluation to the next in its own caches is cleared before it, as a real run
starts without it. The floor is the same harness and mocks evaluating a program of as many
trivial ConfigMaps on one Kubernetes provider as the fleet has resources: what the SDK costs
per resource before the program does anything of its own. It is measured as the SDK runs by
default, and again with the garbage collection setting the program makes for itself
(components/_evaluation.py), so that the second ratio compares like with like. Both sides pay
the same harness: the mocks and the recording of each registration (per registration; what
they cost grows with its inputs). Between the two stands the graph floor (bench/graph_floor.py):
the program's own registrations replayed through the SDK without the program, checked to
register exactly what the program did. It splits the like-for-like ratio in two: what this
graph costs the SDK under these mocks over trivial ConfigMaps, which no program declaring the
graph can go below, and what the program adds on top, including the provider classes'
constructors it cannot do without. Imports are in neither
timed evaluation; the cold columns show them: one evaluation of the same fleet (or floor) in
a fresh interpreter, imports included, as `pulumi preview` runs the program. Peak memory is
the interpreter's maximum resident size. With --repeat, cells are medians and the program's
CPU time shows its range; the program, the two floors and the graph floor take turns, so a
change in the machine's speed during the run reaches all four. Prints a
Markdown table, each speed target met or not (the ratio against both floors: the one with the
same GC setting is the like-for-like one), then the modeled first `up` (scripts/up_model.py)
and version change for each size, and the critical path of the largest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
cold_cpu = time.process_time()
sys.path[:0] = [{tests!r}, {root!r}, {scripts!r}, {bench!r}]
from harness import run_program

kind, arg, preview = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "preview"
cold, counted = kind.endswith("-cold"), kind.endswith("-counted")
kind = kind.removesuffix("-cold").removesuffix("-counted")


def clear_program_caches():
    # Forget what the warm-up left in the program's own caches (images.yaml, read once a run).
    for name, module in list(sys.modules.items()):
        if name == "components" or name.startswith("components."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def floor(count):
    def program():
        import pulumi_kubernetes as k8s
        provider = k8s.Provider("floor", kubeconfig="{{}}")
        for i in range(count - 1):
            k8s.core.v1.ConfigMap(
                f"cm-{{i}}",
                metadata={{"name": f"cm-{{i}}", "namespace": "default"}},
                data={{"key": "value"}},
                opts=__import__("pulumi").ResourceOptions(provider=provider),
            )
    return program

if kind.startswith("floor"):
    if not cold:
        run_program({{}}, preview=preview, program=floor(10))
    if kind == "floor-tuned":
        from components._evaluation import skip_full_garbage_collections
        skip_full_garbage_collections()
    run = lambda: run_program({{}}, preview=preview, program=floor(arg))
elif kind == "graph":
    import graph_floor
    run_program(arg["warmup"], preview=preview)
    clear_program_caches()
    with graph_floor.recording() as recorded_calls:
        recorded = run_program(arg["fleet"], preview=preview)
    # Only digests of the recorded run are kept: the replay's timed run starts with no more of
    # an earlier run in memory than the program's does.
    expected = graph_floor.fingerprints(recorded)
    del recorded
    replay = graph_floor.replay_program(recorded_calls)
    run = lambda: run_program({{}}, preview=preview, program=replay)
else:
    if not cold:
        run_program(arg["warmup"], preview=preview)
        clear_program_caches()
    run = lambda: run_program(arg["fleet"], preview=preview)
if not cold:
    # Every timed run starts from a collected heap: what the runs before it left, the
    # program's GC setting would never collect.
    import gc
    gc.collect()
if counted:
    import graph_floor
    counting = graph_floor.count_sdk_work()
else:
    import contextlib
    counting = contextlib.nullcontext()
with counting as counts:
    started, cpu = time.perf_counter(), time.process_time()
    graph = run()
    done, cpu_done = time.perf_counter(), time.process_time()
if cold:
    cpu = cold_cpu
out = {{
    "run_s": done - started,
    "cpu_s": cpu_done - cpu,
    "resources": len(graph.resources),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}}
if counts is not None:
    out.update(counts)
if kind == "graph":
    # A replay that registered anything else would not be this graph's floor.
    wrong = graph_floor.fingerprint_differences(expected, graph)
    if wrong:
        sys.exit("the replay did not register what the program did:\n" + "\n".join(wrong[:20]))
if kind == "program" and not preview and not cold and not counted:
    import up_model
    sched = up_model.schedule(up_model.nodes_from_graph(graph))
    out["up_s"] = up_model.modeled_up_seconds(sched)
    out["unavoidable_s"] = up_model.unavoidable_chain(sched)
    out["path"] = up_model.critical_path_table(sched)
    from components.app.rollout import rollout_strategy
    from components.config import parse_fleet_config
    from harness import with_admin_principals
    raw = with_admin_principals(arg["fleet"])
    config = parse_fleet_config({{k.split(":", 1)[1]: v for k, v in raw.items()}})
    out["change_s"] = up_model.version_change_seconds(
        rollout_strategy(config.rollout),
        len(config.serving_clusters),
        len(config.rollout.canary),
    )
print(json.dumps(out))
"""


def fleet(size: int) -> dict:
    regions = {
        "aws": ["eu-west-1", "us-east-1", "ap-southeast-2"],
        "azure": ["westeurope", "eastus2"],
    }
    clusters = []
    for i in range(size):
        cloud = "aws" if i % 2 == 0 else "azure"
        clusters.append(
            {"name": f"app-{i}", "cloud": cloud, "region": regions[cloud][i % len(regions[cloud])]}
        )
    return {
        "ocm-fleet:hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
        "ocm-fleet:clusters": clusters,
        "ocm-fleet:apiAllowedCidrs": ["203.0.113.0/24"],
    }


def measure(kind: str, arg: object, mode: str) -> dict:
    code = CHILD.format(
        tests=str(ROOT / "tests"),
        root=str(ROOT),
        scripts=str(ROOT / "scripts"),
        bench=str(ROOT / "bench"),
    )
    out = subprocess.run(
        [sys.executable, "-c", code, kind, json.dumps(arg), mode],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode != 0:
        sys.exit(f"measuring {kind} failed (exit {out.returncode}):\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


RATIO_TARGET = 1.5
"""Program CPU time per resource, at most this many times the floor's, at every size."""
LINEAR_TOLERANCE = 1.2
"""Linear: per resource, the largest fleet costs at most this many times the smallest."""
FLEET_TARGET_SIZE, FLEET_TARGET_S, FLEET_TARGET_MB = 100, 20.0, 1024.0


def print_targets(rows: dict[int, dict]) -> None:
    """Each target, met or not, from the figures of the table above."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print("Targets:\n")
    for size, row in rows.items():
        like_for_like = verdict(row["ratio_same_gc"] <= RATIO_TARGET)
        graph_ratio = row["graph_ms"] / row["floor_same_gc_ms"]
        print(
            f"- {size} app clusters, at most {RATIO_TARGET}x the floor per resource: "
            f"{row['ratio']:.2f}x the floor as the SDK runs by default "
            f"({verdict(row['ratio'] <= RATIO_TARGET)}), {row['ratio_same_gc']:.2f}x the floor "
            f"with the same GC setting, the like-for-like one ({like_for_like}); the graph "
            f"floor alone is {graph_ratio:.2f}x that floor"
            + (
                ", so under these mocks no program that declares this graph can meet the "
                "like-for-like reading"
                if graph_ratio > RATIO_TARGET
                else ""
            )
        )
    if len(rows) > 1:
        small, large = min(rows), max(rows)
        growth = rows[large]["ms"] / rows[small]["ms"]
        print(
            f"- linear from {small} to {large} app clusters: {rows[small]['ms']:.2f} then "
            f"{rows[large]['ms']:.2f} ms per resource, {growth:.2f}x "
            f"({verdict(growth <= LINEAR_TOLERANCE)})"
        )
    if FLEET_TARGET_SIZE in rows:
        row = rows[FLEET_TARGET_SIZE]
        cpu = row["cpu"]
        print(
            f"- {FLEET_TARGET_SIZE} app clusters under {FLEET_TARGET_S:g} s and "
            f"{FLEET_TARGET_MB:g} MB: median {statistics.median(cpu):.2f} s CPU "
            f"(slowest run {cpu[-1]:.2f} s), peak {row['rss']:.0f} MB "
            f"({verdict(statistics.median(cpu) < FLEET_TARGET_S and row['rss'] < FLEET_TARGET_MB)}"
            f"{'' if cpu[-1] < FLEET_TARGET_S else '; not in every run'})"
        )


def print_graph_floor(rows: dict[int, dict]) -> None:
    """The like-for-like ratio, split at the graph floor (bench/graph_floor.py): what the SDK
    costs for exactly the program's registrations, replayed without the program."""
    print(
        "Graph floor: the program's own registrations replayed through the SDK without the "
        "program, with its GC setting (CPU ms per resource). Program / graph floor is what the "
        "program adds, with the provider classes' constructors it calls.\n"
    )
    print(
        "| app clusters | floor, same GC | graph floor | graph floor / floor "
        "| program | program / graph floor |"
    )
    print("|" + " ---: |" * 6)
    for size, row in rows.items():
        t_ms, g_ms, p_ms = row["floor_same_gc_ms"], row["graph_ms"], row["ms"]
        print(
            f"| {size} | {t_ms:.2f} | {g_ms:.2f} | {g_ms / t_ms:.2f} | {p_ms:.2f} "
            f"| {p_ms / g_ms:.2f} |"
        )


def print_work(work: dict[int, tuple[dict, dict, dict]]) -> None:
    """The SDK's units of work per resource, counted in a run of their own: the same on any
    machine, where the times above move with the load."""
    print("SDK work per resource, counted (not timed): Outputs made and asyncio tasks started.\n")
    print(
        "| app clusters | program Outputs | graph floor Outputs | floor Outputs | ratio "
        "| program tasks | graph floor tasks | floor tasks | ratio |"
    )
    print("|" + " ---: |" * 9)
    for size, (program, floor, replayed) in work.items():
        p_n, f_n, g_n = program["resources"], floor["resources"], replayed["resources"]
        p_out, f_out = program["outputs"] / p_n, floor["outputs"] / f_n
        p_task, f_task = program["tasks"] / p_n, floor["tasks"] / f_n
        g_out, g_task = replayed["outputs"] / g_n, replayed["tasks"] / g_n
        print(
            f"| {size} | {p_out:.2f} | {g_out:.2f} | {f_out:.2f} | {p_out / f_out:.2f} "
            f"| {p_task:.2f} | {g_task:.2f} | {f_task:.2f} | {p_task / f_task:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,30,100", help="app cluster counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    parser.add_argument(
        "--preview", action="store_true", help="preview mode (cloud outputs unknown)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    mode = "preview" if args.preview else "update"

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Mode: {mode}; {os.cpu_count()} CPUs, load average {load:.1f} at the start.\n")
    print(
        "Times are CPU seconds of the evaluating process (wall-clock seconds in brackets: on a "
        "shared machine they include waiting for a core).\n"
    )
    print(
        "| app clusters | resources | program (s) | program (ms/resource) "
        "| floor (s) | floor (ms/resource) | ratio | floor, same GC (ms/resource) | ratio "
        "| program peak RSS (MB) | floor peak RSS (MB) | program cold (s) | floor cold (s) |"
    )
    print("|" + " ---: |" * 13)
    paths, rows, work = {}, {}, {}
    for size in sizes:
        arg = {"warmup": fleet(1), "fleet": fleet(size)}
        program, floor, tuned, replayed = [], [], [], []
        for _ in range(args.repeat):
            # Interleaved, so a change in the machine's speed during the run reaches all four.
            program.append(measure("program", arg, mode))
            resources = int(program[0]["resources"])
            floor.append(measure("floor", resources, mode))
            tuned.append(measure("floor-tuned", resources, mode))
            replayed.append(measure("graph", arg, mode))
        program_cold = measure("program-cold", arg, mode)
        floor_cold = measure("floor-tuned-cold", resources, mode)
        work[size] = (
            measure("program-counted", arg, mode),
            measure("floor-counted", resources, mode),
            measure("graph-counted", arg, mode),
        )
        p_s, f_s = median(program, "cpu_s"), median(floor, "cpu_s")
        p_wall, f_wall = median(program, "run_s"), median(floor, "run_s")
        p_ms, f_ms = 1000 * p_s / resources, 1000 * f_s / int(floor[0]["resources"])
        t_ms = 1000 * median(tuned, "cpu_s") / int(tuned[0]["resources"])
        g_ms = 1000 * median(replayed, "cpu_s") / int(replayed[0]["resources"])
        cpu = sorted(r["cpu_s"] for r in program)
        spread = f" [{cpu[0]:.2f}-{cpu[-1]:.2f}]" if len(cpu) > 1 else ""
        print(
            f"| {size} | {resources} | {p_s:.2f}{spread} ({p_wall:.1f}) | {p_ms:.2f} "
            f"| {f_s:.2f} ({f_wall:.1f}) | {f_ms:.2f} "
            f"| {p_ms / f_ms:.2f} | {t_ms:.2f} | {p_ms / t_ms:.2f} "
            f"| {median(program, 'peak_rss_mb'):.0f} "
            f"| {median(floor, 'peak_rss_mb'):.0f} "
            f"| {program_cold['cpu_s']:.2f} | {floor_cold['cpu_s']:.2f} |",
            flush=True,
        )
        rows[size] = {
            "ms": p_ms,
            "ratio": p_ms / f_ms,
            "ratio_same_gc": p_ms / t_ms,
            "floor_same_gc_ms": t_ms,
            "graph_ms": g_ms,
            "cpu": cpu,
            "rss": max(r["peak_rss_mb"] for r in program),
        }
        if "path" in program[0]:
            paths[size] = program[0]
    print()
    print_graph_floor(rows)
    print()
    print_work(work)
    print()
    print_targets(rows)
    print()
    for size, run in paths.items():
        print(
            f"Modeled first `up` of {size} app clusters: {run['up_s'] / 60:.1f} min; "
            f"unavoidable chain {run['unavoidable_s'] / 60:.1f} min "
            f"(ratio {run['up_s'] / run['unavoidable_s']:.2f}); a version change once it runs "
            f"the app, with the default rollout settings: {run['change_s'] / 60:.1f} min."
        )
    if paths:
        largest = max(paths)
        print(f"\nCritical path of {largest} app clusters:\n")
        print("\n".join(paths[largest]["path"]))


if __name__ == "__main__":
    main()

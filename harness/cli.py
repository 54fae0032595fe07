"""The `chaos-harness` command: images, up, status, down, clean, smoke, check, replay, run, search, report, stack.

Every user mistake (Docker down, unknown topology, port in use, bad file) ends as one line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from harness.errors import HarnessError
from harness.progress import say, show_progress


def _stack_from_run(client, run_id: str | None):
    from stack import cleanup
    from stack.stack import Stack

    runs = cleanup.list_runs(client)
    if run_id is None:
        if not runs:
            raise HarnessError("no run is up (in namespace %r)" % cleanup.namespace())
        if len(runs) > 1:
            raise HarnessError(f"several runs are up ({', '.join(sorted(runs))}): name one")
        run_id = next(iter(runs))
    if run_id not in runs:
        raise HarnessError(f"no run {run_id!r}; runs: {', '.join(sorted(runs)) or 'none'}")
    run = runs[run_id]
    return Stack.attach(client, run_id, run.labels), run


def cmd_images(args) -> int:
    from stack.docker_api import docker_client
    from stack.images import ensure_images, plan_images

    if args.action == "list":
        for key, name in plan_images().names.items():
            print(f"{key:10} {name}")
        return 0
    started = time.monotonic()
    topology = None
    if args.stack:  # read before anything is built: a bad file costs nothing
        from stack.topology import RunParams, build_topology
        from stack.images import ensure_own_images

        topology = build_topology(args.stack, RunParams(run_id="images", cookie="images"))
    from stack.images import building

    client = docker_client()
    with building():
        names = ensure_images(client, force=args.force)
        for key, name in names.items():
            print(f"{key:10} {name}")
        if topology is not None:
            ensure_own_images(client, topology.nodes, names["base"], force=args.force)
            for name in sorted({n.image for n in topology.nodes if n.build is not None}):
                print(f"{'built':10} {name}")
    say(f"[images] ready in {time.monotonic() - started:.1f}s")
    return 0


def cmd_up(args) -> int:
    from stack.stack import Stack

    stack = Stack(args.topology, seed=args.seed, detached=True, with_services=not args.no_services,
                  host_port_base=args.port_base, boot_timeout=args.boot_timeout)
    stack.up()
    remote = stack.transport.remote  # this command's tunnels end with it: say where the ports really are
    where = f" on {stack.transport.destination}'s 127.0.0.1 (forward them with ssh -L)" if remote else ""
    print(f"run {stack.run_id} ({stack.topology.name} topology) is up; endpoints{where}:")
    for name, url in stack.endpoints(on_docker_host=remote).items():
        print(f"  {name:18} {url}")
    print(f"take it down with: chaos-harness down {stack.run_id}")
    return 0


def cmd_smoke(args) -> int:
    """Bring a stack up, show the cluster facts its health checks established, take it down."""
    from stack.stack import Stack

    started = time.monotonic()
    with Stack(args.topology, with_services=not args.no_services) as stack:
        up_s = time.monotonic() - started
        for name, url in stack.endpoints().items():
            print(f"  {name:18} {url}")
        print(f"{stack.topology.name} topology healthy: up in {up_s:.1f}s (run {stack.run_id})")
    print(f"down; nothing of run {stack.run_id} left")
    return 0


def cmd_status(args) -> int:
    from stack import cleanup
    from stack.docker_api import docker_client

    client = docker_client()
    runs = cleanup.list_runs(client)
    if args.json:
        print(json.dumps({rid: {"alive": r.alive, "topology": r.labels.get(cleanup.LABEL_TOPOLOGY),
                                "containers": {c.labels.get(cleanup.LABEL_NODE, c.name): c.status
                                               for c in r.containers}}
                          for rid, r in runs.items()}, indent=2))
        return 0
    if not runs:
        print(f"no runs (namespace {cleanup.namespace()})")
        return 0
    for rid, run in sorted(runs.items()):
        owner = "detached" if run.labels.get(cleanup.LABEL_DETACHED) == "1" else (
            f"owned by pid {run.labels.get(cleanup.LABEL_OWNER_PID)}" + ("" if run.alive else " (dead)"))
        print(f"run {rid}: {run.labels.get(cleanup.LABEL_TOPOLOGY)} topology, {owner}")
        for c in sorted(run.containers, key=lambda c: c.name):
            print(f"  {c.labels.get(cleanup.LABEL_NODE, c.name):12} {c.labels.get(cleanup.LABEL_ROLE, ''):10} {c.status}")
    return 0


def cmd_down(args) -> int:
    from stack import cleanup
    from stack.docker_api import docker_client

    client = docker_client()
    _, run = _stack_from_run(client, args.run)
    cleanup.remove_run(client, run, say)
    return 0


def cmd_clean(args) -> int:
    from stack import cleanup
    from stack.docker_api import docker_client

    from faults import sweep

    client = docker_client()
    sweep.sweep(client, say)  # partition rules and toxics left by dead fault runners, first
    removed = cleanup.clean_all(client, say)
    print(f"removed {len(removed)} run(s)" if removed else "nothing to clean")
    return 0


def cmd_replay(args) -> int:
    """Run a saved scenario (or bare schedule) file against a fresh stack and judge it."""
    from harness.scenario import load_scenario, run_scenario
    from stack.stack import Stack

    scenario = load_scenario(args.file)
    stack = Stack(args.topology, seed=args.seed)  # no container yet: the topology is plain data
    scenario.validate(stack.topology)  # a bad file is refused before anything starts
    with stack:
        result = run_scenario(stack, scenario, args.report_dir, seed=args.seed)
    print(result.verdict.summary())
    say_missed(result)
    print(f"report: {result.report_dir}")
    return result.verdict.exit_code


def cmd_run(args) -> int:
    """Run a packaged incident (`incident:NAME`) in one variant against a fresh stack and judge it."""
    from harness.incidents import all_incidents, build
    from harness.incidents.base import parse_pairs
    from harness.scenario import run_scenario
    from stack.stack import Stack

    if args.list:
        for incident in all_incidents().values():
            print(incident.line())
        return 0
    if not args.what:
        raise HarnessError("run what? `chaos-harness run incident:NAME --stack FILE`, or `run --list`")
    kind, sep, name = args.what.partition(":")
    if kind != "incident" or not sep or not name:
        raise HarnessError(f"run {args.what!r}: expected incident:NAME (`chaos-harness run --list` lists them; "
                           "a scenario file is run with `chaos-harness replay FILE`)")
    bind = dict(parse_pairs(args.bind, "--bind"))
    inputs: dict[str, dict[str, str]] = {}
    for key, assignment in parse_pairs(args.input, "--input", sep=":"):
        var, eq, value = assignment.partition("=")
        if not eq or not var:
            raise HarnessError(f"--input {key}:{assignment!r}: expected NAME:KEY=VALUE")
        inputs.setdefault(key, {})[var] = value
    stack = Stack(args.topology, seed=args.seed)  # no container yet: the topology is plain data
    scenario, expect = build(name, stack.topology, args.variant, bind=bind, inputs=inputs)  # refused here
    with stack:
        result = run_scenario(stack, scenario, args.report_dir, seed=args.seed)
    print(result.verdict.summary())
    say_missed(result)
    found = result.violations()
    if args.variant == "vulnerable":
        wanted, came = f"red ({', '.join(sorted(expect))})", expect <= found
    else:
        wanted, came = "green (valid)", result.status == "valid"
    print(f"expected: {wanted}; found: {result.status} ({', '.join(sorted(found)) or 'no violation'}); "
          f"as expected: {'yes' if came and not result.missed else 'no'}")
    print(f"report: {result.report_dir}")
    return result.verdict.exit_code


def cmd_search(args) -> int:
    """Search generated fault schedules on a fresh stack; save and print the shrunk failing one."""
    from harness.generate import fault_names
    from harness.progress import say
    from harness.search import PROFILES, search
    from stack.stack import Stack

    faults = fault_names(args.faults.split(",")) if args.faults else None  # mistakes fail before the stack is up
    if args.profile not in PROFILES:
        raise HarnessError(f"unknown search profile {args.profile!r} (known: {', '.join(PROFILES)})")
    profile = PROFILES[args.profile]
    if args.examples is not None or args.shrink_seconds is not None:
        from dataclasses import replace

        if args.examples is not None and not 1 <= args.examples <= 100_000:
            raise HarnessError(f"--examples must be 1..100000, not {args.examples}")
        if args.shrink_seconds is not None and not 0 <= args.shrink_seconds <= 86_400:
            raise HarnessError(f"--shrink-seconds must be 0..86400, not {args.shrink_seconds}")
        profile = replace(profile, max_examples=args.examples or profile.max_examples,
                          shrink_seconds=profile.shrink_seconds if args.shrink_seconds is None else args.shrink_seconds)
    stack = Stack(args.topology, seed=args.seed)
    deploy = deploy_overrides(args.deploy, stack.topology)  # checked before anything starts
    with stack:
        found = search(stack, args.report_dir, deploy=deploy, profile=profile, seed=args.seed,
                       faults=faults, progress=say)
    print(found.summary())
    return 0 if found.failure is None else 1


def cmd_soak(args) -> int:
    """A long run with faults drawn at random intervals; the schedule is saved before it starts."""
    import json
    from pathlib import Path

    from harness.scenario import Scenario, WorkloadSpec, run_scenario, safe_name
    from harness.soak import parse_duration, parse_span, soak_schedule
    from stack.stack import Stack

    duration = parse_duration(args.duration)
    interval, window = parse_span(args.interval, "--interval"), parse_span(args.window, "--window")
    faults = [f for f in args.faults.split(",") if f]
    stack = Stack(args.topology, seed=args.seed)  # no container yet: the topology is plain data
    steps = soak_schedule(stack.topology, faults, duration, interval, window, seed=args.seed, overlap=args.overlap)
    scenario = Scenario(name=f"soak-{stack.topology.name}-{args.seed}", schedule=steps,
                        workload=WorkloadSpec(clients=args.clients, rate=args.rate, duration_s=duration),
                        drain_s=args.drain)
    scenario.validate(stack.topology)
    saved = Path(args.report_dir) / f"{safe_name(scenario.name)}.scenario.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(scenario.to_data(), indent=2) + "\n")
    kinds = sorted({s["fault"] for s in steps})
    say(f"[soak] {len(steps)} fault steps of {len(kinds)} kinds ({', '.join(kinds)}) over {duration:.0f}s; "
        f"schedule saved to {saved} (replay: chaos-harness replay {saved} --topology {args.topology} "
        f"--seed {args.seed})")
    with stack:
        result = run_scenario(stack, scenario, args.report_dir, seed=args.seed)
    print(result.verdict.summary())
    say_missed(result)
    print(f"report: {result.report_dir}")
    return result.verdict.exit_code


def say_missed(result) -> None:
    """Each schedule step that took no effect, one warning line: the verdict says nothing about it."""
    if result.missed:
        steps = len(result.coverage) + len(result.missed)
        print(f"warning: {len(result.missed)} of {steps} steps took no effect; the verdict covers the others only")
    for missed in result.missed:
        print(f"warning: step {missed.get('step')} {missed.get('fault')} took no effect: "
              f"{missed.get('error') or 'no effect'} (a verdict over faults that hit nothing proves nothing)")


def deploy_overrides(specs: list[str], topology) -> dict[str, dict[str, str]]:
    """`--deploy TARGET:KEY=VALUE` (repeatable) as node -> env; TARGET is a node, a role of the stack file
    or its plural (`workers`)."""
    from faults.roles import _is_node_target, _role

    deploy: dict[str, dict[str, str]] = {}
    for spec in specs:
        target, sep, assignment = spec.partition(":")
        key, eq, value = assignment.partition("=")
        if not sep or not eq or not key:
            raise HarnessError(f"--deploy {spec!r}: expected TARGET:KEY=VALUE, e.g. workers:FEATURE_FLAGS=new-retry")
        role = _role(target, topology)
        nodes = topology.names(role) if role else [target] if target in {n.name for n in topology.nodes} else []
        if not nodes or not _is_node_target(target, topology):
            raise HarnessError(f"--deploy {spec!r}: no node or role {target!r} in the {topology.name} stack")
        for node in nodes:
            deploy.setdefault(node, {})[key] = value
    return deploy


def cmd_check(args) -> int:
    from harness.verdict import check_file

    return check_file(args.file, json_out=args.json)


def cmd_report(args) -> int:
    """Re-draw report.html (and index.html for a report root) from the stored files, offline."""
    from harness.progress import say
    from reports.redraw import redraw

    for page in redraw(args.dir, progress=say):
        print(page)
    return 0


def cmd_stack_check(args) -> int:
    """Validate a stack file (nothing starts) and print the nodes and proxy links it resolves to."""
    from stack.model import describe, load_stack_file
    from stack.topology import RunParams, stack_file_of

    topology = load_stack_file(stack_file_of(args.file), RunParams(run_id="check", cookie="check",
                                                     with_services=not args.no_services))
    print("\n".join(describe(topology)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaos-harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    images = sub.add_parser("images", help="build or list the stack's images (cached by input hash)")
    images.add_argument("action", choices=["build", "list"])
    images.add_argument("--force", action="store_true", help="rebuild even if cached")
    images.add_argument("--stack", metavar="FILE", help="also build the images this stack file's services "
                        "declare with build: (a shipped name, default or small, or a path)")
    images.set_defaults(func=cmd_images)

    up = sub.add_parser("up", help="bring a stack up and leave it running (until `down`)")
    up.add_argument("--topology", default="default", help="default (3 brokers, 3 ZooKeeper, 3 Sentinels), small, "
                                                          "or a stack file of your own (.yaml)")
    up.add_argument("--seed", type=int, default=0, help="seed for the proxy's randomness")
    up.add_argument("--port-base", type=int, default=None,
                    help="publish endpoints on 127.0.0.1 from this port up (default: any free ports)")
    up.add_argument("--no-services", action="store_true", help="infrastructure only, no dispatch services")
    up.add_argument("--boot-timeout", type=float, default=180.0, help="seconds to wait for health")
    up.set_defaults(func=cmd_up)

    smoke = sub.add_parser("smoke", help="bring a stack up, check its health, take it down")
    smoke.add_argument("--topology", default="default")
    smoke.add_argument("--no-services", action="store_true")
    smoke.set_defaults(func=cmd_smoke)

    status = sub.add_parser("status", help="list runs and their containers")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    down = sub.add_parser("down", help="take a run down (the only one if not named)")
    down.add_argument("run", nargs="?")
    down.set_defaults(func=cmd_down)

    clean = sub.add_parser("clean", help="remove every labelled resource, including those of killed runs")
    clean.set_defaults(func=cmd_clean)

    replay = sub.add_parser("replay", help="run a saved scenario or schedule file and judge it "
                                           "(exit 0 valid, 1 invalid, 2 unknown)")
    replay.add_argument("file")
    replay.add_argument("--topology", default="default")
    replay.add_argument("--seed", type=int, default=0)
    replay.add_argument("--report-dir", default="chaos-reports")
    replay.set_defaults(func=cmd_replay)

    run = sub.add_parser("run", help="run a packaged incident against a fresh stack and judge it (exit 0 valid, "
                                     "1 invalid, 2 unknown); `run --list` lists them")
    run.add_argument("what", nargs="?", metavar="incident:NAME")
    run.add_argument("--list", action="store_true", help="list the packaged incidents, one line each")
    run.add_argument("--topology", "--stack", dest="topology", default="default", metavar="FILE",
                     help="a stack file, or a shipped stack's name (default, small)")
    run.add_argument("--variant", choices=("vulnerable", "hardened"), default="hardened",
                     help="hardened (default): the app as the stack file runs it, expected valid; vulnerable: its "
                          "bug switched on (x-chaos.incidents.NAME.bug), expected red")
    run.add_argument("--bind", action="append", default=[], metavar="SLOT=TARGET",
                     help="bind an incident slot (senders, leader, api) to a role and client group, over the "
                          "stack file's x-chaos.incidents.slots (repeatable)")
    run.add_argument("--input", action="append", default=[], metavar="NAME:KEY=VALUE",
                     help="an input's env (bug, misconfig), over the stack file's (repeatable; the variables "
                          "given for one input replace the file's for it)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--report-dir", default="chaos-reports")
    run.set_defaults(func=cmd_run)

    search = sub.add_parser("search", help="run generated fault schedules, shrink a failing one and save it "
                                           "(exit 0 nothing found, 1 found)")
    search.add_argument("--deploy", action="append", default=[], metavar="TARGET:KEY=VALUE",
                        help="deploy an environment override before the search, on a node or every node of a "
                             "role, e.g. workers:FEATURE_FLAGS=new-retry (repeatable; default: the "
                             "stack file's spec)")
    search.add_argument("--profile", default="ci", help="ci (few schedules: up to 3 steps within 16 s, short "
                                                       "faults) or nightly (many: up to 10 steps over 60 s, every fault)")
    search.add_argument("--faults", default="", help="comma-separated faults to draw from (default: the profile's: "
                                                     "the registry's short-run faults for ci, all for nightly)")
    search.add_argument("--topology", default="default")
    search.add_argument("--examples", type=int, default=None,
                        help="how many schedules to try (default: the profile's, 5 for ci, 200 for nightly)")
    search.add_argument("--shrink-seconds", type=float, default=None,
                        help="how long to shrink a failure for (default: the profile's, 150 s ci, 1 h nightly)")
    search.add_argument("--seed", type=int, default=0)
    search.add_argument("--report-dir", default="chaos-reports")
    search.set_defaults(func=cmd_search)

    soak = sub.add_parser("soak", help="a long run with faults drawn at random intervals (a nemesis package), "
                                       "judged at the end (exit 0 valid, 1 invalid, 2 unknown)")
    soak.add_argument("--topology", "--stack", default="default", help="a shipped stack (default, small) or a file")
    soak.add_argument("--duration", default="30m", help="how long the workload and the faults run (2h, 30m, 90s)")
    soak.add_argument("--faults", default=",".join(("partition", "kill", "pause", "latency", "link-down",
                                                     "redis-failover", "cpu-starve", "dns-fail")),
                      help="comma-separated faults to draw from")
    soak.add_argument("--interval", default="10..30s", help="seconds between one fault's heal and the next inject")
    soak.add_argument("--window", default="5..15s", help="how long each fault lasts")
    soak.add_argument("--overlap", action="store_true", help="count intervals from the previous inject, so "
                                                             "windows may overlap")
    soak.add_argument("--clients", type=int, default=4)
    soak.add_argument("--rate", type=float, default=20.0, help="requests per second, all clients together")
    soak.add_argument("--drain", type=float, default=90.0, help="seconds to wait for deliveries at the end")
    soak.add_argument("--seed", type=int, default=0)
    soak.add_argument("--report-dir", default="chaos-reports")
    soak.set_defaults(func=cmd_soak)

    check = sub.add_parser("check", help="judge a stored history again (exit 0 valid, 1 invalid, 2 unknown)")
    check.add_argument("file")
    check.add_argument("--json", default=None, help="also write the verdict as JSON to this file")
    check.set_defaults(func=cmd_check)

    report = sub.add_parser("report", help="re-draw report.html of a run directory, or of every run "
                                           "and index.html of a report root, from the stored files")
    report.add_argument("dir")
    report.set_defaults(func=cmd_report)

    stack_file = sub.add_parser("stack", help="stack files: `stack check FILE` validates one and prints "
                                              "the nodes and links it resolves to")
    stack_file.add_argument("action", choices=["check"])
    stack_file.add_argument("file")
    stack_file.add_argument("--no-services", action="store_true", help="infrastructure only")
    stack_file.set_defaults(func=cmd_stack_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_progress()
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"chaos-harness: error: {exc}", file=sys.stderr)
        if exc.detail:
            print("\n".join("  | " + line for line in exc.detail.rstrip().splitlines()), file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("chaos-harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

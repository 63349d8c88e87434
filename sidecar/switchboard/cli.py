"""Edge: the `switchboard` command. Each subcommand imports what it needs when it runs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from switchboard.api import names


def _validate(args: argparse.Namespace) -> int:
    from switchboard.config.commands import validate

    ok, lines = validate([Path(p) for p in args.files])
    for line in lines:
        print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _render(args: argparse.Namespace) -> int:
    from switchboard.config.load import ConfigError, load_config
    from switchboard.config.render import config_text

    try:
        print(config_text(load_config(Path(args.file))), end="")
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    return 0


def _sidecar(args: argparse.Namespace) -> int:
    from switchboard.config.load import ConfigError
    from switchboard.sidecar.app import run, settings_from

    logging.basicConfig(
        level=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = settings_from(
        args.config,
        env=os.environ,
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        feature=args.feature,
        team=args.team,
        namespace=args.namespace,
        reload_interval=args.reload_interval,
        outbox=args.outbox,
    )
    try:
        run(settings)
    except ConfigError as exc:
        print(f"switchboard sidecar: cannot use {args.config}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


def _operator(args: argparse.Namespace) -> int:
    import kopf
    from pydantic import ValidationError

    from switchboard.config.load import ConfigError, load_injector_settings
    from switchboard.config.model import InjectorSettings, OperatorSettings
    from switchboard.operator.kube import PeeringMissing
    from switchboard.operator.main import run

    logging.basicConfig(
        level=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        injector = (
            load_injector_settings(Path(args.injector_config))
            if args.injector_config
            else InjectorSettings()
        )
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"switchboard operator: {problem}", file=sys.stderr)
        return 2
    try:
        settings = OperatorSettings(
            namespaces=args.namespace or [],
            budget_interval_seconds=args.budget_interval,
            ledger_url=args.ledger,
            peering=None if args.standalone else args.peering,
            priority=args.priority,
            peering_lifetime_seconds=args.peering_lifetime,
            metrics_host=args.metrics_host,
            metrics_port=args.metrics_port,
            liveness_endpoint=args.liveness,
            webhook_host=args.webhook_host,
            webhook_port=args.webhook_port,
            webhook_cert=args.webhook_cert,
            webhook_key=args.webhook_key,
            injector=injector,
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            where = f"{field}: " if field else ""
            print(f"switchboard operator: {where}{error['msg']}", file=sys.stderr)
        return 2
    try:
        run(settings)
    except (PeeringMissing, kopf.TemporaryError) as exc:  # before kopf started
        print(f"switchboard operator: {exc}", file=sys.stderr)
        return 1
    return 0


def _mock_provider(args: argparse.Namespace) -> int:
    from switchboard.mockprovider import main

    return main(args.rest)


def _crds(args: argparse.Namespace) -> int:
    from switchboard.crdgen import main

    return main(args.rest)


def _demo(args: argparse.Namespace) -> int:
    from switchboard.demo import main

    return main(args)


def _budgets(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from switchboard.ledger.commands import budgets

    try:
        now = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError:
        print(f"switchboard budgets: --at {args.at!r} is not an ISO 8601 time", file=sys.stderr)
        return 2
    ok, lines = budgets(Path(args.config), args.ledger, now, namespace=args.namespace)
    for line in lines:
        print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def _dev(args: argparse.Namespace) -> int:
    from switchboard import devcluster

    directory = Path(args.dir) if args.dir else devcluster.default_dir()
    try:
        if args.action == "down":
            stopped = devcluster.down(directory)
            print(f"{'stopped' if stopped else 'no cluster ran in'} {directory}", file=sys.stderr)
            return 0
        lines = devcluster.up(directory) if args.action == "up" else devcluster.env_lines(directory)
    except devcluster.ClusterError as exc:
        print(f"switchboard dev cluster {args.action}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="switchboard", description="Route, price and budget LLM API traffic."
    )
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check RoutingPolicy / FeatureBudget manifests")
    p.add_argument("files", nargs="+", help="YAML files or directories")
    p.set_defaults(func=_validate)

    p = sub.add_parser("render", help="print the sidecar config rendered from manifests")
    p.add_argument("file", help="a RoutingPolicy manifest, multi-document YAML or directory")
    p.set_defaults(func=_render)

    p = sub.add_parser("sidecar", help="run the OpenAI-compatible routing sidecar")
    p.add_argument("--config", required=True, help="RoutingPolicy manifest, config or directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=names.DEFAULT_PORT)
    p.add_argument("--metrics-port", type=int, default=None, help="also serve /metrics here")
    p.add_argument("--feature", default=None, help=f"default: ${names.ENV_FEATURE}")
    p.add_argument("--team", default=None, help=f"default: ${names.ENV_TEAM}")
    p.add_argument("--namespace", default=None, help=f"default: ${names.ENV_NAMESPACE}")
    p.add_argument("--reload-interval", type=float, default=1.0, help="seconds between checks")
    p.add_argument(
        "--outbox",
        default=None,
        help="file holding ledger records while Redis is unreachable "
        "(default: $SWITCHBOARD_OUTBOX or /tmp/switchboard/outbox.jsonl)",
    )
    p.set_defaults(func=_sidecar)

    p = sub.add_parser(
        "operator", help="run the operator: RoutingPolicy -> ConfigMap, FeatureBudget status"
    )
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n", "--namespace", action="append", help="serve this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace")
    p.add_argument(
        "--budget-interval", type=float, default=30.0, help="seconds between budget reads"
    )
    p.add_argument("--ledger", default=None, help="redis://... (default: the policies' redisURL)")
    peers = p.add_mutually_exclusive_group()
    peers.add_argument(
        "--peering",
        default="switchboard",
        help="kopf peering object the replicas share; one acts (default: switchboard)",
    )
    peers.add_argument("--standalone", action="store_true", help="run without peering")
    p.add_argument(
        "--priority", type=int, default=None, help="peering priority (default: the oldest acts)"
    )
    p.add_argument(
        "--peering-lifetime", type=int, default=60, help="seconds a silent replica counts as live"
    )
    p.add_argument("--metrics-host", default="0.0.0.0", help="address of /metrics")
    p.add_argument("--metrics-port", type=int, default=9090, help="port of /metrics (0: any)")
    p.add_argument(
        "--liveness", default=None, help="liveness probe URL, e.g. http://0.0.0.0:8080/healthz"
    )
    p.add_argument(
        "--webhook-port",
        type=int,
        default=None,
        help=f"serve the sidecar-injection webhook over HTTPS on this port, at the path "
        f"{names.WEBHOOK_INJECT_PATH} (default: no webhook)",
    )
    p.add_argument("--webhook-host", default="0.0.0.0", help="address of the webhook server")
    p.add_argument("--webhook-cert", default=None, help="PEM certificate file of the webhook")
    p.add_argument("--webhook-key", default=None, help="PEM private key file of the webhook")
    p.add_argument(
        "--injector-config",
        default=None,
        help="InjectorSettings YAML: sidecar image, ports, resources... (default: built-in)",
    )
    p.set_defaults(func=_operator)

    p = sub.add_parser(
        "mock-provider", help="run the mock OpenAI-compatible provider", add_help=False
    )
    p.set_defaults(func=_mock_provider, passthrough=True)

    p = sub.add_parser(
        "crds", help="write (or --check) crds/ from the pydantic models", add_help=False
    )
    p.set_defaults(func=_crds, passthrough=True)

    p = sub.add_parser("demo", help="a local run: mock providers, the sidecar, a workload")
    p.add_argument("--requests", type=int, default=120, help="requests in the workload")
    p.set_defaults(func=_demo)

    p = sub.add_parser("budgets", help="each budget's spend in its current period, from the ledger")
    p.add_argument("--config", required=True, help="RoutingPolicy + FeatureBudgets (file or dir)")
    p.add_argument("--ledger", default=None, help="redis://... (default: the policy's redisURL)")
    p.add_argument("--namespace", default=None, help="default: the policy's namespace")
    p.add_argument("--at", default=None, help="ISO 8601 time whose periods to show (default: now)")
    p.set_defaults(func=_budgets)

    p = sub.add_parser("dev", help="developer tooling")
    dev = p.add_subparsers(dest="dev_command", required=True)
    p = dev.add_parser(
        "cluster",
        help="a local control plane (etcd, kube-apiserver, kube-controller-manager) on 127.0.0.1",
    )
    p.add_argument(
        "action",
        choices=["up", "down", "env"],
        help="up: build if needed and start in the background; down: stop; "
        "env: print the export lines for KUBECONFIG and PATH (kubectl, helm)",
    )
    p.add_argument(
        "--dir",
        default=None,
        help="state, logs and data (default: ${XDG_CACHE_HOME:-~/.cache}/switchboard/dev-cluster)",
    )
    p.set_defaults(func=_dev)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    args, rest = top.parse_known_args(argv)
    if getattr(args, "passthrough", False):
        args.rest = rest  # the subcommand parses its own options
    elif rest:
        top.error(f"unrecognized arguments: {' '.join(rest)}")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Headless command line: ``wiregrad validate | gradcheck | ops``.

Exit codes: 0 success; 1 a check failed; 2 bad input (usage, unreadable or invalid graph,
missing optional extra — the message gives the pip command); 3 training stopped by the NaN
guard. Bad input prints one clear paragraph, never a traceback. Never imports Qt.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from engine.errors import GraphError, WiregradError

SUBCOMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def wrap(fn):
        SUBCOMMANDS[name] = fn
        return fn

    return wrap


# ----------------------------------------------------------------- helpers


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _load(graph: str) -> tuple[dict, str]:
    from engine import presets

    doc, path = presets.load(graph)
    return doc, str(path)


# ----------------------------------------------------------------- commands


@command("validate")
def cmd_validate(args: argparse.Namespace) -> int:
    """Shapes, parameter counts and FLOPs per node; every diagnostic."""
    from engine import api
    from engine.registry import format_shape

    doc, path = _load(args.graph)
    report = api.validate(doc)
    if args.json:
        _print_json(report)
    else:
        name = doc.get("meta", {}).get("name") or args.graph
        print(f"{name}  ({path})")
        rows = []
        for n in report["nodes"]:
            outs = ", ".join(f"{p}: {format_shape(s)}" for p, s in n["outputs"].items()) or "-"
            rows.append([n["id"], n["type"], outs, f"{n['param_count']:,}", _human(n["flops"])])
        print(_table(rows, ["node", "type", "outputs", "params", "FLOPs/example"]))
        print(f"\ntotal: {report['total_params']:,} parameters, "
              f"{_human(report['total_flops'])} FLOPs per example (forward)")
        for d in report["diagnostics"]:
            where = d["node"] or "graph"
            if d["port"]:
                where += f":{d['port']}"
            print(f"{d['severity']}: {where}: {d['message']}", file=sys.stderr)
        if report["ok"]:
            print("ok")
    return 0 if report["ok"] else 2


@command("gradcheck")
def cmd_gradcheck(args: argparse.Namespace) -> int:
    """Backprop against float64 central differences, per node."""
    from engine import api
    from engine.gradcheck import TOLERANCE

    doc, _ = _load(args.graph)
    result = api.gradcheck(doc, args.node, args.seed)
    if args.json:
        _print_json(result)
    else:
        rows = [[n["id"], f"{n['max_rel_err']:.2e}", n["checked"], "ok" if n["ok"] else "FAIL",
                 n["worst"]] for n in result["nodes"]]
        print(_table(rows, ["node", "max rel err", "coords", "result", "worst tensor"]))
        verdict = "all nodes pass" if result["ok"] else "some nodes FAIL"
        print(f"\n{verdict} (tolerance {TOLERANCE:g}, float64 central differences)")
    return 0 if result["ok"] else 1


@command("ops")
def cmd_ops(args: argparse.Namespace) -> int:
    """The op registry as a table or as Markdown (docs/ops.md)."""
    from engine import registry
    from engine.opsdoc import ops_markdown

    if args.markdown:
        sys.stdout.write(ops_markdown())
        return 0
    if args.json:
        _print_json(registry.catalog())
        return 0
    rows = [[s.name, s.category, s.summary] for s in registry.all_ops()]
    print(_table(rows, ["op", "category", "summary"]))
    return 0


# ----------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    parser = argparse.ArgumentParser(
        prog="wiregrad",
        description="Wiregrad: wire, train and sample neural networks. Without a subcommand, "
                    "`wiregrad [GRAPH]` opens the editor.",
    )
    parser.add_argument("--version", action="version", version=f"wiregrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check a graph: shapes, parameters, FLOPs, diagnostics")
    p.add_argument("graph", help="document path or preset name (e.g. spiral_mlp)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("gradcheck", help="compare backprop with float64 finite differences")
    p.add_argument("graph", help="document path or preset name")
    p.add_argument("--node", help="check only this node id")
    p.add_argument("--seed", type=int, default=0, help="seed for data and coordinates")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("ops", help="list every op in the registry")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print docs/ops.md")
    fmt.add_argument("--json", action="store_true", help="print the catalog as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return SUBCOMMANDS[args.command](args)
    except GraphError as exc:
        for d in exc.diagnostics:
            print(f"{d.severity}: {d}", file=sys.stderr)
        return exc.exit_code
    except WiregradError as exc:
        print(f"wiregrad {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

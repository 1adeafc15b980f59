"""Command line: ``python -m nnterp toy --list`` (more subcommands arrive with the plugin)."""

from __future__ import annotations

import argparse
import sys
import warnings


def _toy(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .toy.build import causal_lm_classes, resolve_model_type
    from .toy.survey import survey

    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    types = [resolve_model_type(name) for name in args.names] if args.names else list(causal_lm_classes())
    statuses = survey(types)
    rows = [(s.model_type, s.class_name, "ok" if s.ok else "FAIL", f"{s.parameters:,}" if s.ok else "",
             f"{s.seconds:.2f}", s.reason[:120]) for s in statuses]
    print(tabulate(rows, headers=["model type", "class", "status", "parameters", "seconds", "why not"]))
    built = sum(s.ok for s in statuses)
    print(f"\n{built} of {len(statuses)} toy models build and run on this machine")
    return 0 if built == len(statuses) or not args.strict else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnterp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    toy = commands.add_parser("toy", help="build the offline toy models and report which run here")
    toy.add_argument("names", nargs="*", help="model types or class names (default: every causal-LM type)")
    toy.add_argument("--list", action="store_true", help="list every toy model with its status (the default)")
    toy.add_argument("--strict", action="store_true", help="exit with 1 if any toy model fails")
    toy.set_defaults(handler=_toy)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())

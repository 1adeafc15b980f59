"""Command line: ``python -m nnterp toy --list`` and ``python -m nnterp validate`` (toy-model matrix)."""

from __future__ import annotations

import argparse
import sys
import warnings


def _toy(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .toy.build import causal_lm_classes, resolve_model_type
    from .toy.survey import survey

    _quiet()
    types = [resolve_model_type(name) for name in args.names] if args.names else list(causal_lm_classes())
    statuses = survey(types)
    rows = [(s.model_type, s.class_name, "ok" if s.ok else "FAIL", f"{s.parameters:,}" if s.ok else "",
             f"{s.seconds:.2f}", s.reason[:120]) for s in statuses]
    print(tabulate(rows, headers=["model type", "class", "status", "parameters", "seconds", "why not"]))
    built = sum(s.ok for s in statuses)
    print(f"\n{built} of {len(statuses)} toy models build and run on this machine")
    return 0 if built == len(statuses) or not args.strict else 1


def _validate(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .toy.build import causal_lm_classes, resolve_model_type
    from .toy.suite import matrix_rows, validate_toy

    _quiet()
    types = [resolve_model_type(name) for name in args.names] if args.names else list(causal_lm_classes())
    validations = []
    for model_type in types:
        validations.append(validate_toy(model_type))
        if args.verbose:
            print(model_type, "ok" if validations[-1].passed else "FAIL", flush=True)
    headers, rows = matrix_rows(validations)
    print(tabulate(rows, headers=headers))
    passed = sum(validation.passed for validation in validations)
    print(f"\n{passed} of {len(validations)} toy architectures pass every check")
    return 0 if passed == len(validations) or not args.strict else 1


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnterp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    toy = commands.add_parser("toy", help="build the offline toy models and report which run here")
    toy.add_argument("names", nargs="*", help="model types or class names (default: every causal-LM type)")
    toy.add_argument("--list", action="store_true", help="list every toy model with its status (the default)")
    toy.add_argument("--strict", action="store_true", help="exit with 1 if any toy model fails")
    toy.set_defaults(handler=_toy)
    validate = commands.add_parser("validate", help="run the load-time checks on toy models and print the matrix")
    validate.add_argument("names", nargs="*", help="model types or class names (default: every causal-LM type)")
    validate.add_argument("--verbose", action="store_true", help="print each architecture as it finishes")
    validate.add_argument("--strict", action="store_true", help="exit with 1 if any architecture fails")
    validate.set_defaults(handler=_validate)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())

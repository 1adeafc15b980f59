"""Command line: ``python -m nnterp toy --list``, ``validate`` (toy-model matrix), ``report`` (the
compatibility site) and ``status ARCH`` (what the compatibility reports say about one architecture)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .errors import CommandLineError, NNterpError


def _toy(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .toy.survey import survey

    _quiet()
    types, vision_types = _model_types(args.names)
    statuses = survey(types, vision_types) if args.names else survey()
    rows = [(s.model_type, s.class_name, s.task, "ok" if s.ok else "FAIL", f"{s.parameters:,}" if s.ok else "",
             f"{s.seconds:.2f}", s.reason[:120]) for s in statuses]
    print(tabulate(rows, headers=["model type", "class", "task", "status", "parameters", "seconds", "why not"]))
    built = sum(s.ok for s in statuses)
    print(f"\n{built} of {len(statuses)} toy models build and run on this machine")
    return 0 if built == len(statuses) or not args.strict else 1


def _validate(args: argparse.Namespace) -> int:
    """The pytest plugin's checks on toy models, without writing a report: its table is the matrix."""
    import pytest

    _model_types(args.names)  # an unknown name: one line and exit status 2, before pytest starts
    names = args.names or ["all"]
    return int(pytest.main(["-p", "no:cacheprovider", "-q", "--nnterp-classes", *names, "--nnterp-no-report",
                            *(["-n", str(args.workers)] if args.workers else [])]))


def _model_types(names: list[str]) -> tuple[list[str], list[str]]:
    """The causal-LM and vision-language model types named on the command line (every one of both if none),
    or a CommandLineError."""
    from .toy.build import causal_lm_classes
    from .toy.vision import image_text_to_text_classes, resolve_toy_name

    if not names:
        return list(causal_lm_classes()), list(image_text_to_text_classes())
    types: list[str] = []
    vision_types: list[str] = []
    for name in names:
        try:
            model_type, vision = resolve_toy_name(name)
        except KeyError as error:
            raise CommandLineError(error.args[0]) from None
        (vision_types if vision else types).append(model_type)
    return types, vision_types


def _report(args: argparse.Namespace) -> int:
    from .compat.render import markdown_table, render_site, version_sets
    from .compat.store import find_reports

    if args.diff:
        from .compat.diff import diff_reports, format_diff
        from .compat.store import load_report

        old, new = (load_report(Path(path)) for path in args.diff)
        print(format_diff(diff_reports(old, new)))
        return 0
    if args.diff_committed:
        return _diff_committed(Path(args.diff_committed))
    directories = _report_dirs(args)
    index = render_site(directories, args.out)
    print(f"compatibility site written to {index}")
    if args.matrix_markdown:
        from .compat.history import build_history
        from .compat.render import history_markdown

        history = build_history(version_sets(find_reports(directories)))
        Path(args.matrix_markdown).write_text(history_markdown(history), encoding="utf-8")
        print(f"Markdown matrix of {len(history.columns)} version sets written to {args.matrix_markdown}")
    if args.markdown:
        sets = version_sets(find_reports(directories))
        if not sets:
            print(f"no reports in {', '.join(map(str, directories))}: {args.markdown} not written", file=sys.stderr)
            return 1
        Path(args.markdown).write_text(markdown_table(sets[-1].report), encoding="utf-8")
        print(f"Markdown table of {sets[-1].title} written to {args.markdown}")
    return 0


def _diff_committed(where: Path) -> int:
    """The report in ``where`` (a file, or a folder holding one) against the last committed report for its
    versions: new models, regressions, fixes. Exit status 1 if an entry regressed."""
    from .compat.baseline import against_committed, last_committed_report
    from .compat.lookup import shipped_report_directory
    from .compat.store import find_reports, load_report

    found = [where] if where.is_file() else sorted(where.glob("*.json"))
    if len(found) != 1:
        raise CommandLineError(f"--diff-committed: {where} holds {len(found)} reports; give one report file")
    new = load_report(found[0])
    folder = shipped_report_directory()
    committed = last_committed_report(new.versions, find_reports([folder] if folder else []))
    if committed is None:
        raise CommandLineError(f"--diff-committed: no committed report at or before {found[0].name} in {folder}")
    lines, regressed = against_committed(new, committed)
    print("\n".join(lines))
    return 1 if regressed else 0


def _status(args: argparse.Namespace) -> int:
    from .compat.render import status_text
    from .compat.store import find_reports

    directories = _report_dirs(args)
    found = find_reports(directories)
    text = status_text(found, args.architecture)
    if text is None:
        known = sorted({arch for _, report in found for arch in report.architectures})
        print(f"no report in {', '.join(map(str, directories))} mentions {args.architecture}; "
              f"reported architectures: {', '.join(known) or 'none'}", file=sys.stderr)
        return 1
    print(text)
    return 0


def _report_dirs(args: argparse.Namespace) -> list[Path]:
    """The --reports-dir folders, else those the load-time lookup reads (shipped reports, $NNTERP_REPORT_DIR)."""
    if args.reports_dir:
        missing = [d for d in args.reports_dir if not Path(d).is_dir()]
        if missing:
            raise CommandLineError(f"--reports-dir {', '.join(missing)}: no such folder; pass a folder of report "
                                   "JSON files (the pytest plugin writes them to compat_reports/ by default)")
        return [Path(d) for d in args.reports_dir]
    from .compat.lookup import report_directories

    return report_directories()


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()


def _run_tests(args: argparse.Namespace, pytest_args: list[str]) -> int:
    import pytest

    selection = []
    if args.model_names:
        selection += ["--nnterp-models", *args.model_names]
    if args.class_names:
        selection += ["--nnterp-classes", *args.class_names]
    if not selection:
        print("run_tests: give --model-names and/or --class-names (e.g. --class-names all)")
        return 2
    report_dir = _report_dir(args)
    report = ["--nnterp-no-report"] if report_dir is None else ["--nnterp-report", str(report_dir)]
    status = int(pytest.main([*selection, *report, *pytest_args]))
    if report_dir is not None and args.site and report_dir.is_dir():
        from .compat.render import render_site

        print(f"pages: {render_site([report_dir], args.site)}")
    return status


def _report_dir(args: argparse.Namespace) -> Path | None:
    """The folder ``run_tests`` tells the plugin to write to, and renders the pages from: ``--nnterp-report``,
    else the user's report folder (``nnterp.compat.lookup.report_write_directory``); None: ``--nnterp-no-report``."""
    if args.nnterp_no_report:
        return None
    if args.nnterp_report:
        return Path(args.nnterp_report)
    from .compat.lookup import report_write_directory

    return report_write_directory()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnterp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    toy = commands.add_parser("toy", help="build the offline toy models and report which run here")
    toy.add_argument("names", nargs="*", help="model types or class names (default: every causal-LM type)")
    toy.add_argument("--list", action="store_true", help="list every toy model with its status (the default)")
    toy.add_argument("--strict", action="store_true", help="exit with 1 if any toy model fails")
    toy.set_defaults(handler=_toy)
    validate = commands.add_parser("validate", help="run every check on toy models and print the matrix, "
                                   "writing no report (run_tests --class-names ... --nnterp-no-report)")
    validate.add_argument("names", nargs="*", help="model types or class names (default: every causal-LM type)")
    validate.add_argument("-n", "--workers", type=int, default=0, help="pytest-xdist worker processes (default: none)")
    validate.set_defaults(handler=_validate)
    report = commands.add_parser("report", help="render the compatibility reports as a static site")
    report.add_argument("--reports-dir", action="append", metavar="DIR", help="folder of report JSON files "
                        "(repeatable; default: nnterp's compat_reports/ and $NNTERP_REPORT_DIR)")
    report.add_argument("--out", default="site", metavar="DIR", help="where to write the site (default: site/)")
    report.add_argument("--markdown", metavar="FILE", help="also write the latest report as a Markdown table")
    report.add_argument("--matrix-markdown", metavar="FILE", help="also write the architectures x version sets "
                        "matrix as Markdown")
    report.add_argument("--diff", nargs=2, metavar=("OLD", "NEW"), help="print what changed between two report "
                        "files instead of rendering")
    report.add_argument("--diff-committed", metavar="REPORT", help="print what a report (a file, or a folder "
                        "holding one) found against the last committed report for its versions: new models, "
                        "regressions, fixes; exit status 1 if an entry regressed (`nox -s newest` runs it)")
    report.set_defaults(handler=_report)
    status = commands.add_parser("status", help="print what the compatibility reports say about one architecture")
    status.add_argument("architecture", metavar="ARCH", help="HuggingFace class name, e.g. LlamaForCausalLM")
    status.add_argument("--reports-dir", action="append", metavar="DIR", help="folder of report JSON files "
                        "(repeatable; default: nnterp's compat_reports/ and $NNTERP_REPORT_DIR)")
    status.set_defaults(handler=_status)
    run_tests = commands.add_parser(
        "run_tests", help="run nnterp's compatibility checks through pytest (other arguments go to pytest)")
    run_tests.add_argument("--model-names", nargs="+", default=[], metavar="NAME",
                           help="hub ids, local paths or .gguf files of real models")
    run_tests.add_argument("--class-names", nargs="+", default=[], metavar="NAME",
                           help="toy models by class name or model type, or 'all'")
    run_tests.add_argument("--site", default="site", metavar="DIR",
                           help="render the report pages here after the run (default: site/; '' to skip)")
    run_tests.add_argument("--nnterp-report", metavar="DIR", help="write the report in DIR (default: the first "
                           "folder of $NNTERP_REPORT_DIR, else ~/.cache/nnterp/compat_reports)")
    run_tests.add_argument("--nnterp-no-report", action="store_true", help="write no report (and no pages)")
    run_tests.set_defaults(handler=None)
    args, extra = parser.parse_known_args(argv)
    if args.command == "run_tests":
        return _run_tests(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.handler(args)
    except (NNterpError, OSError) as error:  # a bad argument: one line, not a traceback
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        return 2


def _run() -> int:
    """main(), quiet when the reader closes the pipe early (`python -m nnterp status X | head -1`)."""
    try:
        return main()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 141


if __name__ == "__main__":
    sys.exit(_run())

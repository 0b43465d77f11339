"""The `workbench` command.

Each subcommand lives next to the code it drives and exposes `configure(parser)` and
`run(args) -> int`; this module only lists them. Error convention for every command: a
`WorkbenchError` (or an `OSError` naming a file) prints one line on stderr and exits 2
(`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from workbench.errors import WorkbenchError

# (command, module providing configure/run, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("families", "workbench.commands.families", "list registered families, classes, workloads and presets"),
    ("build-reference", "workbench.commands.build_reference", "build a family's official pipeline offline"),
    ("parity", "workbench.commands.parity", "compare the native pipeline with the official one"),
    ("generate", "workbench.commands.generate", "generate media with the native pipeline"),
    ("bless", "workbench.commands.bless", "regenerate golden artifacts in reference_outputs/"),
    ("run", "workbench.commands.run", "execute a family's notebooks headless (papermill) into runs/"),
    ("sweep", "workbench.commands.sweep", "parity or generation over a parameter grid, locally or on Ray"),
    ("lab", "workbench.commands.lab", "start or stop JupyterLab on 127.0.0.1 with a token"),
    ("perf", "workbench.commands.perf", "record performance runs, compare them with baselines, reseed baselines"),
    ("trace-diff", "workbench.commands.trace_diff", "first divergent module between two activation traces"),
    ("component-parity", "workbench.commands.component_parity",
     "check each component against its official class and record the result"),
    ("status", "workbench.commands.status", "read (or --run) a port's gates and regenerate PORT_STATUS.md"),
    ("handoff", "workbench.commands.handoff", "print the pipeline handoff report, every field computed"),
    ("new-family", "workbench.commands.new_family", "scaffold a new family so a port starts in one command"),
    ("selfcheck", "workbench.commands.selfcheck", "plant single faults and report parity's detection and localisation"),
]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with `command` set, one that imports only that command's module.

    Importing a command can be slow (torch, diffusers, the registry); `workbench X` should
    pay only for X.
    """
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            module = importlib.import_module(module_name)
            module.configure(p)
            p.set_defaults(_run=module.run)
    return parser


def _one_line(exc: BaseException) -> str:
    """The message on one line (a library message may hold newlines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The only top-level option is a flag, so the first bare word is the command; with no
    # known command, nothing is imported and argparse reports the usage error or help.
    command = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(command)
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except WorkbenchError as exc:
        if args.debug:
            raise
        print(f"workbench {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command reads or writes: the OS names it and what failed
        if args.debug:
            raise
        print(f"workbench {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""`workbench new-family NAME --workload T2V --like wan_t2v`: scaffold a port in one command.

Writes workbench/families/NAME/ (config, presets, reference builder stub, pipeline stub,
port_state.yaml, notebook_parameters.yaml; with --official Cls also the module list and
DEFAULTS read from the class, a tiny builder, capture, probe stubs, a FastMode placeholder
and examples/NAME.py) and tests/families/NAME/ (tests that fail,
naming the stub to fill in, until the port is done). Registration is explicit: the lines
for workbench/registry.py are printed, or inserted with --register.
"""

from __future__ import annotations

from pathlib import Path


def configure(parser) -> None:
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.add_argument("name", help="family name, lower_snake_case (e.g. hunyuan_t2v)")
    parser.add_argument("--workload", required=True, help="T2V, I2V, V2V, T2I, T2A, A2A or T2AV")
    parser.add_argument("--like", required=True, help="the closest registered family to start from")
    parser.add_argument("--official", default="TODO", help="the diffusers pipeline class it ports (e.g. WanPipeline)")
    parser.add_argument("--dest", type=Path, help="folder to create the family in (default: workbench/families)")
    parser.add_argument("--tests-dest", type=Path, help="folder for its tests (default: tests/families)")
    parser.add_argument("--examples-dest", type=Path, help="folder for its example script (default: examples)")
    parser.add_argument("--register", action="store_true", help="insert the registry lines into workbench/registry.py")


def run(args) -> int:
    from workbench.portstate.scaffold import register, scaffold

    result = scaffold(args.name, args.workload, args.like, official=args.official, dest=args.dest,
                      tests_dest=args.tests_dest, examples_dest=args.examples_dest)
    for path in result.written:
        print(f"wrote {path}")
    imports, call = result.registry_lines
    if args.register:
        print(f"registered in {register(result)}")
    else:
        print("\nadd to workbench/registry.py (registration is explicit):\n" + imports + call)
    if not result.package.startswith("workbench."):
        print(f"(import name {result.package!r}: put {result.folder.parent} on sys.path)")
    if result.modules:
        print(f"\nofficial modules ({len(result.modules)}): " + ", ".join(
            f"{m.name}={m.library}.{m.class_name}" + ("?" if m.optional else "") for m in result.modules))
    if result.next_steps:
        print("\n" + result.next_steps, end="")
    else:
        print(f"next: fill the stubs until `pytest {result.tests}` passes; then `workbench status {args.name} --run`")
    return 0

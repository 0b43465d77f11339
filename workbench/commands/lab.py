"""`workbench lab [--port P] [--gpu N] | --stop`: JupyterLab on 127.0.0.1 with a generated token."""

from __future__ import annotations


def configure(parser) -> None:
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--gpu", type=int, metavar="N", help="expose only GPU N to the server (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--stop", action="store_true", help="stop the lab started earlier")


def run(args) -> int:
    from workbench import lab

    if args.stop:
        stopped = lab.stop()
        print(lab.stop_message(stopped))  # "stopped" only when the recorded process was signalled
        return 0
    started = lab.start(port=args.port, gpu=args.gpu)
    print(f"JupyterLab (pid {started.pid}) serves {started.root}")
    print(started.url)
    print("stop it with: workbench lab --stop")
    return 0

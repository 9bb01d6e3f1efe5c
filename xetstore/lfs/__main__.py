"""The agent's fast entry, which `xetstore lfs install` configures. git-lfs starts eight
agents one after another for every transfer, so this path imports neither click nor the
engine; other subcommands go to the full command line.

    python -m xetstore.lfs agent [--repo URL]
"""

import argparse
import gc
import sys

from ..errors import EXIT_INTERRUPTED


def main() -> None:
    if sys.argv[1:2] != ["agent"]:
        from ..cli import main as cli_main

        cli_main(["lfs", *sys.argv[1:]])
        return
    from ..interrupts import terminate_as_interrupt
    from .agent import main as agent_main

    terminate_as_interrupt()  # the repository closes, the lease and spool are released
    parser = argparse.ArgumentParser(prog="python -m xetstore.lfs agent")
    parser.add_argument("--repo", help="repository URL (default: $XETSTORE_REPO, then lfs.url)")
    try:
        sys.exit(agent_main(parser.parse_args(sys.argv[2:]).repo))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    finally:
        gc.freeze()  # the transfer is done: spare the teardown's collections (see cli.main)


if __name__ == "__main__":
    main()

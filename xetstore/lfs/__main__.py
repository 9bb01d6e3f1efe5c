"""The agent's fast entry, which `xetstore lfs install` configures. git-lfs starts eight
agents one after another for every transfer, so this path imports neither click nor the
engine; other subcommands go to the full command line.

    python -m xetstore.lfs agent [--repo URL]
"""

import argparse
import sys


def main() -> None:
    if sys.argv[1:2] != ["agent"]:
        from ..cli import main as cli_main

        cli_main(["lfs", *sys.argv[1:]])
        return
    from .agent import main as agent_main

    parser = argparse.ArgumentParser(prog="python -m xetstore.lfs agent")
    parser.add_argument("--repo", help="repository URL (default: $XETSTORE_REPO, then lfs.url)")
    sys.exit(agent_main(parser.parse_args(sys.argv[2:]).repo))


if __name__ == "__main__":
    main()

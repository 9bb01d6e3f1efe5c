"""`python -m xetstore.lfs agent [--repo URL]`: the agent's fast entry, which `xetstore lfs
install` configures. git-lfs starts eight agents one after another for every transfer, so
this path imports neither click nor the engine; other subcommands go to the full CLI.
"""

import argparse
import sys

if sys.argv[1:2] == ["agent"]:
    from .agent import main as agent_main

    parser = argparse.ArgumentParser(prog="python -m xetstore.lfs agent")
    parser.add_argument("--repo", help="repository URL (default: $XETSTORE_REPO, then lfs.url)")
    sys.exit(agent_main(parser.parse_args(sys.argv[2:]).repo))
else:
    from ..cli import main

    main(["lfs", *sys.argv[1:]])

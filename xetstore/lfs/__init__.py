"""git-lfs integration: a standalone custom transfer agent backed by a xetstore repository.

    protocol.py    the line protocol and the agent's states (pure)
    locator.py     the sentinel lfs.url that names a repository (pure)
    gitconfig.py   what git says: LFS directories, which repository to use
    agent.py       the agent loop: requests -> Repository -> replies
    commands.py    `xetstore lfs agent|install|uninstall|init|env`

Nothing is imported here: git-lfs starts eight agents serially for every
transfer, so `python -m xetstore.lfs agent` must start fast.
"""

__all__: list[str] = []

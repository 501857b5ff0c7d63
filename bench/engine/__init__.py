"""Parts of ``python -m bench engine``: the IPC floor, the peers, and our engine's cases."""

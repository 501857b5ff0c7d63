"""sluiceway: move chat messages fast and safely."""

from sluiceway._core import __version__ as __version__

__all__ = ["__version__"]

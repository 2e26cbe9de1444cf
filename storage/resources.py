"""Files that ship inside the installed package (codebooks, instruments, word lists, migrations, demo material).

They are found through importlib.resources, so they load from a wheel's install as well
as from an editable checkout, whatever the current directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_path(package: str, *parts: str) -> Path:
    """The real path of a folder or file shipped in ``package`` (e.g. ``concord.codebooks``).

    pip installs wheels unpacked, so resources are ordinary files; a zipped install
    would need extracting, and Concord does not support running from one.
    """
    traversable = resources.files(package).joinpath(*parts)
    if not isinstance(traversable, Path):
        raise RuntimeError(
            f"Concord's resource {package}/{'/'.join(parts)} is not on the file system; "
            "install Concord with pip (not as a zip)"
        )
    return traversable

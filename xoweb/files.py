"""Files xoweb keeps on the machine are its own: owner-only modes under ``var/``.

``var/`` holds the database (with the login sessions), the generated secrets, Redis's data (the
queued tasks), Flower's database and the demo pool's disks: another local user who can read them
can take over a session or queue a task for the worker. So every xoweb process sets the umask
077 as soon as its settings load (files 0600, folders 0700), the processes that load no settings
(Redis, the simulator) get it from their wrapper or the Procfile, and a ``var/`` left looser by
an older xoweb is tightened at start-up, saying so once. See docs/security.md §Files.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

#: The umask of every xoweb process: no group or other bits on anything it creates.
PRIVATE_UMASK = 0o077
#: The bits that must not be set on anything under var/.
LOOSE_BITS = stat.S_IRWXG | stat.S_IRWXO


def use_private_umask() -> None:
    """Make every file and folder this process creates from now on owner-only."""
    os.umask(PRIVATE_UMASK)


def tighten(var_dir: Path) -> list[Path]:
    """Remove the group and other bits from ``var_dir`` and everything under it.

    Symbolic links are neither followed nor changed (``var/npm`` may point at a shared
    folder). Returns the paths that were tightened; a path that vanishes meanwhile is skipped.
    """
    tightened: list[Path] = []
    if not var_dir.is_dir():
        return tightened
    walked = ((Path(root), [*dirs, *files]) for root, dirs, files in os.walk(var_dir))
    for path in [var_dir, *(root / name for root, names in walked for name in names)]:
        try:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not mode & LOOSE_BITS:
                continue
            path.chmod(stat.S_IMODE(mode) & ~LOOSE_BITS)
        except FileNotFoundError:
            continue
        tightened.append(path)
    return tightened


def secure_var_dir(var_dir: Path) -> None:
    """Set the private umask, create ``var_dir`` (0700) and tighten what an older run left."""
    use_private_umask()
    var_dir.mkdir(parents=True, exist_ok=True)
    tightened = tighten(var_dir)
    if tightened:
        # Settings load before logging is configured: standard error is where this shows.
        sys.stderr.write(
            f"xoweb: {len(tightened)} file(s) and folder(s) under {var_dir} were readable by "
            "other users; they are now owner-only (files 0600, folders 0700)\n"
        )

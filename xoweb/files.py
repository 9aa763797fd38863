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


def tighten(var_dir: Path) -> tuple[list[Path], list[str]]:
    """Remove the group and other bits from ``var_dir`` and everything under it.

    Symbolic links are neither followed nor changed (``var/npm`` may point at a shared
    folder), and a file system mounted inside (a backup remote's share) is left to its own
    rules. Returns the paths tightened, and a message for each that could not be.
    """
    tightened: list[Path] = []
    failed: list[str] = []
    if not var_dir.is_dir():
        return tightened, failed
    device = var_dir.stat().st_dev
    for root, dirs, files in os.walk(var_dir):
        here = Path(root)
        first = [var_dir] if here == var_dir else []
        for path in [*first, *(here / name for name in [*dirs, *files])]:
            try:
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode) or info.st_dev != device:
                    continue
                if info.st_mode & LOOSE_BITS:
                    path.chmod(stat.S_IMODE(info.st_mode) & ~LOOSE_BITS)
                    tightened.append(path)
            except FileNotFoundError:
                continue  # removed meanwhile by another process
            except OSError as error:
                failed.append(f"{path}: {error.strerror}")
        # Do not walk into another file system (os.walk does not follow links already).
        dirs[:] = [name for name in dirs if _same_device(here / name, device)]
    return tightened, failed


def _same_device(path: Path, device: int) -> bool:
    try:
        return path.lstat().st_dev == device
    except OSError:
        return False


def secure_var_dir(var_dir: Path) -> None:
    """Set the private umask, create ``var_dir`` (0700) and tighten what an older run left."""
    use_private_umask()
    var_dir.mkdir(parents=True, exist_ok=True)
    tightened, failed = tighten(var_dir)
    # Settings load before logging is configured: standard error is where this shows.
    if tightened:
        sys.stderr.write(
            f"xoweb: {len(tightened)} file(s) and folder(s) under {var_dir} were readable by "
            "other users; they are now owner-only (files 0600, folders 0700)\n"
        )
    for message in failed:
        sys.stderr.write(f"xoweb: could not make {message} owner-only\n")

"""Flower's configuration (``celery -A xoweb flower --conf=xoweb/flowerconfig.py``).

Flower shows every task's arguments, so it is never open: basic authentication with the user
``admin`` and a password generated into ``var/flower_password`` on first run, unless
``FLOWER_BASIC_AUTH`` (``user:password[,user:password]``) is set.
"""

import os
from pathlib import Path

from xoweb.secrets import read_or_create_secret

_var_dir = Path(os.environ.get("XOWEB_VAR_DIR", Path(__file__).resolve().parent.parent / "var"))

address = "127.0.0.1"
port = int(os.environ.get("XOWEB_FLOWER_PORT", "5555"))
basic_auth = (
    os.environ.get("FLOWER_BASIC_AUTH", "").split(",")
    if os.environ.get("FLOWER_BASIC_AUTH")
    else [f"admin:{read_or_create_secret(_var_dir / 'flower_password', nbytes=18)}"]
)
# Keep what Flower saw across its restarts.
persistent = True
db = str(_var_dir / "flower.db")
max_tasks = 10000

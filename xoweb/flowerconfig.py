"""Flower's configuration (``celery -A xoweb flower --conf=xoweb/flowerconfig.py``).

Flower shows every task's arguments, so it is never open: basic authentication with the user
``admin`` and a password generated into ``var/flower_password`` on first run, unless
``FLOWER_BASIC_AUTH`` (``user:password[,user:password]``) is set.

Flower 2.2 leaves two pages outside its own login: ``/metrics`` (Prometheus: task names,
workers, counts) and ``/healthcheck``. Both are put behind the same password here; a Prometheus
scraper gives it as basic authentication (docs/security.md §Flower).
"""

import os
from pathlib import Path

from flower.views import monitor
from tornado import web

from xoweb.files import use_private_umask
from xoweb.secrets import read_or_create_secret

# Flower's database (every task it saw, with its arguments) is owner-only, like all of var/.
use_private_umask()

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

for _handler in (monitor.Metrics, monitor.Healthcheck):
    if not getattr(_handler.get, "__wrapped__", None):  # the file may be read twice
        _handler.get = web.authenticated(_handler.get)

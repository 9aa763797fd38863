"""xapisim: a simulated XCP-ng / XenServer pool served over real HTTP (XML-RPC, JSON-RPC, disks).

Standalone on purpose: it imports nothing from Django or xoweb, so operators can run it alone to
rehearse backups and every xoweb test can treat it as a real pool. See xapisim/README.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

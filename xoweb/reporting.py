"""Error reports that never show a secret, even on the DEBUG page.

Django's ``SafeExceptionReporterFilter`` hides the POST parameters named by
``sensitive_post_parameters`` (a pool's password) and the variables named by
``sensitive_variables`` only when DEBUG is off; a developer's DEBUG page would show them. This
filter hides them always, so a password typed in a form is never rendered back
(docs/architecture.md §Rules, rule 7).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request: HttpRequest | None) -> bool:
        return True

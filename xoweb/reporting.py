"""Error reports that never show a secret, even on the DEBUG page.

Django's ``SafeExceptionReporterFilter`` hides the POST parameters named by
``sensitive_post_parameters`` (a pool's password) and the variables named by
``sensitive_variables`` only when DEBUG is off; a developer's DEBUG page would show them. This
filter hides them always, so a password typed in a form is never rendered back
(docs/architecture.md §Rules, rule 7). It also hides the settings that carry the Redis password
in a URL (docs/security.md §Secrets).
"""

from __future__ import annotations

import re

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|REDIS_URL|BROKER_URL|RESULT_BACKEND",
        flags=re.IGNORECASE,
    )

    def is_active(self, request: HttpRequest | None) -> bool:
        return True

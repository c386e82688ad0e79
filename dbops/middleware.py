"""Request-level query profiling: every SQL statement of a request timed, summarized and tagged."""

from __future__ import annotations

from django.conf import settings

from dbops.conf import dbops_setting
from dbops.instrumentation.profiling import QueryProfile


class QueryProfilingMiddleware:
    """Profiles each request when QUERY_PROFILING_ENABLED; adds a Server-Timing header.

    The setting is read per request so it can be switched without a restart of the test client.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if not settings.QUERY_PROFILING_ENABLED:
            return self.get_response(request)
        profile = QueryProfile(
            f"{request.method} {request.path_info}", log_in_background=dbops_setting("PROFILING_LOG_IN_BACKGROUND")
        )
        with profile:
            response = self.get_response(request)
        response["Server-Timing"] = profile.server_timing()
        return response

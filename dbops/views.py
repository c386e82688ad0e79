"""HTTP views of dbops. Only the health endpoint for load balancers lives here."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from dbops.services.health import UNHEALTHY, health_check


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """The health report as JSON: 200 when healthy or degraded, 503 when unhealthy (cannot serve)."""
    report = health_check()
    return JsonResponse(report.as_dict(), status=503 if report.status == UNHEALTHY else 200)

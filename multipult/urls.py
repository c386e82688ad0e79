from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from dbops.views import health
from multipult.celery import app as celery_app  # noqa: F401  (web requests use our app: django-celery-beat's admin)
from multipult.graphql.views import GraphQLView

urlpatterns = [
    path("admin/dbops/", include("dbops.urls")),  # before admin.site.urls, which would claim the prefix
    path("admin/", admin.site.urls),
    path("graphql", GraphQLView.as_view(graphiql=True), name="graphql"),
    path("health/", health, name="health"),
]

if settings.DEBUG:
    urlpatterns.append(path("__debug__/", include("debug_toolbar.urls")))

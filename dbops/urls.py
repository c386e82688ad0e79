"""dbops admin pages outside the model admins (the project mounts them under /admin/dbops/)."""

from django.urls import path

from dbops import views

app_name = "dbops"

urlpatterns = [
    path("slow-statements/", views.slow_statements_view, name="slow-statements"),
    path("slow-statements/plan/", views.query_plan_view, name="query-plan"),
]

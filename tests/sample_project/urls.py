from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/dbops/", include("dbops.urls")), path("admin/", admin.site.urls)]

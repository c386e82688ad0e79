"""The URLconf of multipult.settings_ops: the backup, restore and WAL commands serve no pages.

Django's URL system checks import ROOT_URLCONF; the full one mounts the admin and GraphQL apps,
which that profile leaves out.
"""

urlpatterns: list = []

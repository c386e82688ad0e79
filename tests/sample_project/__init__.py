"""A small Django project that is not MultiPULT: a library with authors, books and loans. It installs
dbops with INSTALLED_APPS and settings alone, and tests/test_sample_project.py runs backup, verify,
restore, export and import on it. Nothing here may import multipult."""

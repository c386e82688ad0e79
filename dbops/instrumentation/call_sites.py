"""Where a statement was asked for: the first frame of the application's own code, outside Django,
the profiling middleware and dbops (a library to the project that installs it), found by walking the
stack once per statement with one dict lookup per frame (locations are cached per code object)."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path
from types import CodeType, FrameType

import django
from django.conf import settings

from dbops.conf import dbops_setting

_PROJECT_ROOT = str(Path(settings.BASE_DIR).resolve()) + "/"
# as the interpreter names the files it loaded (not resolved: a symlinked virtualenv stays as it is)
_DBOPS_ROOT = str(Path(__file__).parents[1]) + "/"
_DJANGO_ROOT = str(Path(django.__file__).parent) + "/"
_STDLIB = sysconfig.get_paths()["stdlib"] + "/"
_LIBRARIES = ("/site-packages/", "/dist-packages/")
# Frames that run a statement rather than ask for it: never a call site, not even the fallback.
_PLUMBING = (
    _DJANGO_ROOT + "db/",
    _DJANGO_ROOT + "core/handlers/",
    _DJANGO_ROOT + "utils/",
    _DBOPS_ROOT + "instrumentation/",
)
# The profiling middleware's frame: what called the request (a WSGI server, a test client) is not its code.
_REQUEST_BOUNDARY = _DBOPS_ROOT + "middleware.py"
APPLICATION, FALLBACK, BOUNDARY = 0, 1, 2
_code_locations: dict[CodeType, tuple[int, str] | None] = {}


def _relative(filename: str) -> str:
    for marker in _LIBRARIES:
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename[len(_PROJECT_ROOT) :] if filename.startswith(_PROJECT_ROOT) else filename


def _code_location(code: CodeType) -> tuple[int, str] | None:
    """(APPLICATION, FALLBACK or BOUNDARY, `path:qualname`) of a frame's code, or None when it is plumbing."""
    filename = code.co_filename
    if filename == _REQUEST_BOUNDARY:
        return BOUNDARY, ""
    if filename.startswith(_PLUMBING) or filename.startswith(_STDLIB) or filename.startswith("<"):
        return None
    label = f"{_relative(filename)}:{code.co_qualname}"
    application = (
        filename.startswith(_PROJECT_ROOT)
        and not filename.startswith(_DBOPS_ROOT)
        and not any(marker in filename for marker in (*_LIBRARIES, "/.venv/"))
        and not filename.endswith(dbops_setting("PROFILING_SKIP_FILES"))
    )
    return (APPLICATION if application else FALLBACK), label


def application_frame(depth: int) -> tuple[FrameType, int] | None:
    """The nearest application frame `depth` or more frames above the caller and its depth from the caller,
    or None when the request boundary or the stack's end comes first."""
    frame, depth = sys._getframe(depth + 1), depth
    while frame is not None:
        code = frame.f_code
        try:
            location = _code_locations[code]
        except KeyError:
            location = _code_locations[code] = _code_location(code)
        if location is not None:
            if location[0] == BOUNDARY:
                return None
            if location[0] == APPLICATION:
                return frame, depth
        frame, depth = frame.f_back, depth + 1
    return None


def call_site(depth: int = 2) -> str:
    """`path/to/file.py:function:line` of the nearest application frame; where there is none (a page of
    Django's admin, a dbops task) the nearest frame that is not the ORM or the profiling plumbing."""
    frame = sys._getframe(depth)
    fallback = ""
    while frame is not None:
        code = frame.f_code
        try:
            location = _code_locations[code]
        except KeyError:
            location = _code_locations[code] = _code_location(code)
        if location is not None:
            tier, label = location
            if tier == BOUNDARY:
                break
            if tier == APPLICATION:
                return f"{label}:{frame.f_lineno}"
            fallback = fallback or f"{label}:{frame.f_lineno}"
        frame = frame.f_back
    return fallback or "unknown"

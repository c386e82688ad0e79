"""The sample project with one wrong entity declaration (a model that does not exist), for the
test that dbops reports it as one system-check error before any work."""

from tests.sample_project.settings import *  # noqa: F403
from tests.sample_project.settings import DBOPS

DBOPS = {**DBOPS, "ENTITIES": [*DBOPS["ENTITIES"], {"name": "magazines", "model": "library.Magazine"}]}

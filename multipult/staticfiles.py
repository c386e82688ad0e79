"""The static files storage: WhiteNoise's hashed, compressed files (served with DEBUG off), without
rewriting source-map comments. The vendored GraphiQL bundles name .map files they do not ship, and their
bytes are pinned by SRI hashes, so they can be neither completed nor edited; Django's rewrite of
`sourceMappingURL` would stop collectstatic on the missing maps."""

from __future__ import annotations

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


def _without_source_maps(patterns: tuple) -> tuple:
    def rewrites_a_map(pattern) -> bool:
        return "sourceMappingURL" in (pattern if isinstance(pattern, str) else pattern[0])

    return tuple(
        (extension, tuple(pattern for pattern in rules if not rewrites_a_map(pattern))) for extension, rules in patterns
    )


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    patterns = _without_source_maps(ManifestStaticFilesStorage.patterns)

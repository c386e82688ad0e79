"""The S3 client that probes use (health_check here, a project's own config validation): short timeouts,
no retries. Free of Django settings, so it also works before settings load."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def s3_client(options: Mapping[str, Any], timeout: float):
    """A boto3 client from storage-style options (endpoint_url, access_key, secret_key, region_name)."""
    import boto3
    from botocore.config import Config as BotoConfig

    return boto3.client(
        "s3",
        endpoint_url=options.get("endpoint_url"),
        aws_access_key_id=options.get("access_key"),
        aws_secret_access_key=options.get("secret_key"),
        region_name=options.get("region_name") or "us-east-1",
        config=BotoConfig(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
    )

"""A real S3-compatible server on 127.0.0.1 for the tests: moto's standalone server, a process of its own.

moto checks no credentials unless told to. This server is started with ``INITIAL_NO_AUTH_ACTION_COUNT=3``:
the first three calls (create an IAM user, its access key, a policy letting it use S3) go unchecked, and
every later request must be signed with that user's key, so a wrong secret or an unknown key is refused
as a real endpoint refuses it. The server runs in its own process group and is ended by SIGKILL of that
group; it keeps everything in memory, so nothing is left behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.ports import free_port

REGION = "us-east-1"
_S3_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def s3_server_available() -> bool:
    """moto's server (``pip install 'moto[server]'``: flask) and boto3 are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("moto", "flask", "boto3"))


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint and the one access key it accepts."""

    endpoint: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = REGION

    def client(self, *, secret: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=secret or self.secret_access_key,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix`` in ``bucket``, read whole (key -> bytes)."""
        client = self.client()
        out: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                try:
                    out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                except client.exceptions.NoSuchKey:  # deleted since it was listed (a store is removing files)
                    continue
        return out

    def download(self, bucket: str, folder: Path, prefix: str = "") -> list[Path]:
        """Every object of ``bucket`` (under ``prefix``) as a file under ``folder`` (for ``devkit.table_files``)."""
        paths = []
        for key, body in self.objects(bucket, prefix).items():
            if key.endswith("/"):  # a folder marker (pyarrow writes one for metadata/): empty, nothing to read
                if body:
                    raise AssertionError(f"the folder marker {key!r} holds {len(body)} bytes")
                continue
            path = folder / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            paths.append(path)
        return paths


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """A TCP connect, not a request: moto counts requests against the three it lets through unsigned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's server on a free 127.0.0.1 port with credential checks on; yield it; kill it."""
    import boto3

    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3", "MOTO_ALLOW_NONEXISTENT_REGION": "false"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_listening(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
        )
        iam.create_user(UserName="consentry-store")
        key = iam.create_access_key(UserName="consentry-store")["AccessKey"]
        iam.put_user_policy(UserName="consentry-store", PolicyName="s3", PolicyDocument=json.dumps(_S3_POLICY))
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

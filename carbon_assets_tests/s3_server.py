"""A local S3 server for tests: moto's server mode, a real process on a loopback port.

Not an in-process mock: the project's code, its CLI subprocesses and Spark's Python workers
all reach it over HTTP with the standard AWS variables (`S3Server.env`), as they would reach
a real object store. One server per test session (`s3_server`); every test gets a bucket of
its own (`s3_lake`), so tests never see each other's objects.

    with start_s3_server() as server:
        bucket = server.create_bucket("lake")  # e.g. "lake-3f9c0a1b2d4e"
        lake = {"CARBON_LAKE_URL": f"s3://{bucket}/lake"}
        subprocess.run([...], env=os.environ | server.env | lake)
        server.keys(bucket, "lake/bronze/")
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import pytest

HOST = "127.0.0.1"
# Credentials moto accepts; they only have to be present, as on any S3 endpoint.
ACCESS_KEY_ID = SECRET_ACCESS_KEY = "test"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class S3Server:
    """A running moto server: where it answers, the variables that point a client at it,
    and buckets made and listed with boto3."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pid: int | None = None  # moto_server's process, once started
        self.endpoint_url = f"http://{HOST}:{port}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    @cached_property
    def client(self):
        """A boto3 S3 client for this server, configured explicitly rather than from the
        test process's environment (which may point elsewhere, or nowhere)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=REGION,
        )

    def filesystem(self):
        """An s3fs filesystem for this server (paths "bucket/key"), configured explicitly."""
        import s3fs

        return s3fs.S3FileSystem(
            key=ACCESS_KEY_ID,
            secret=SECRET_ACCESS_KEY,
            endpoint_url=self.endpoint_url,
            client_kwargs={"region_name": REGION},
        )

    def create_bucket(self, name: str) -> str:
        """Create a bucket named after `name` plus a random suffix; return its name.

        The suffix keeps buckets of different tests (and of reruns) apart on the one server.
        """
        base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:40] or "bucket"
        bucket = f"{base}-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=bucket)
        return bucket

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in `bucket` starting with `prefix`, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def delete_bucket(self, bucket: str) -> None:
        """Delete `bucket` and every object in it (the server keeps them in memory)."""
        keys = self.keys(bucket)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        self.client.delete_bucket(Bucket=bucket)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` (any status: moto answers / with its buckets)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def start_s3_server() -> Iterator[S3Server]:
    """Start `moto_server` from this virtual environment on a free loopback port, wait until
    it answers, and stop it (and delete its log) on exit."""
    executable = Path(sys.executable).parent / "moto_server"
    if not executable.exists():
        raise RuntimeError(f"{executable} is missing: install moto[s3,server] in the venv")
    with tempfile.TemporaryFile("w+") as log:
        server = S3Server(_free_port())
        process = subprocess.Popen(
            [str(executable), "-H", HOST, "-p", str(server.port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server.pid = process.pid
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(server.endpoint_url + "/"):
                # Exited: the port was taken between choosing it and binding it, say.
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(
                        f"moto_server did not answer on {server.endpoint_url}: {log.read()[-2000:]}"
                    )
                time.sleep(0.1)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One local S3 server (moto, on loopback) for the whole test session."""
    with start_s3_server() as server:
        yield server


@pytest.fixture
def s3_lake(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`s3://BUCKET/lake` in a fresh bucket of the session's S3 server, deleted afterwards.

    The AWS variables point at the server for the test's own process too (code run in-process
    reads them); a subprocess gets them with `s3_server.env`.
    """
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.create_bucket("lake")
    yield f"s3://{bucket}/lake"
    s3_server.delete_bucket(bucket)

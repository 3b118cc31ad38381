"""``python -m curate.server WORKSPACE [DATA_ROOT ...]`` (see :func:`curate.server.serving.main`)."""

import sys

from curate.server.serving import main

if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses in the tests
    sys.exit(main(sys.argv[1:]))

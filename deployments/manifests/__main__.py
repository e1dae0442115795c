import sys

from deployments.manifests.cli import main

sys.exit(main())

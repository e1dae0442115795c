import sys

from deployments.dashboards.cli import main

sys.exit(main())

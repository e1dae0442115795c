import sys

from deployments.deploy.cli import main

sys.stdout.reconfigure(line_buffering=True)  # progress lines show up as they happen
sys.exit(main())

#!/usr/bin/env python3
"""Build the lab's container images into .k8s-lab/images/ (deployments/lab_images/cli.py).

python deployments/k8s-lab/images.py build [--only NAME ...] [--smoke]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deployments.lab_images.cli import main

if __name__ == "__main__":
    sys.exit(main())

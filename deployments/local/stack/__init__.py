"""Local development stack: Kafka (KRaft), Redis and FerretDB as plain background processes.

    .venv/bin/python -m deployments.local.stack up|down|status|clean|install
    .venv/bin/python -m deployments.local.stack start|stop|kill kafka|redis|ferretdb

Everything (installed tools, data, logs, pid files) lives under one folder, `.stack/` at the repo
root (override with VOTES_STACK_DIR). `up` installs what is missing, starts what is not running,
waits until every part answers a health check and creates the Kafka topics. See
deployments/local/README.md for the layout and the environment variables.

Modules: config (VOTES_* variables, folder layout), service (the interface of a part), kafka,
redis, ferretdb, postgresql (the parts; PostgreSQL only with
VOTES_STACK_FERRETDB_BACKEND=postgresql), processes (launch, pid files, signals, the lock),
control (Stack).
From Python:

    from deployments.local.stack import Stack
    Stack().stop("kafka")
"""

from deployments.local.stack.config import Config
from deployments.local.stack.control import ALL_PARTS, PARTS, PartStatus, Stack, parts_for
from deployments.local.stack.errors import StackError

__all__ = ["ALL_PARTS", "PARTS", "Config", "PartStatus", "Stack", "StackError", "parts_for"]

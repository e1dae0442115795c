"""Kafka: a single KRaft node (broker + controller), jars from Maven Central, topics made by us."""

import base64
import hashlib
import logging
import os
import re
import shutil
import string
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from deployments.local.stack import installing
from deployments.local.stack.config import LOCAL_DIR, show
from deployments.local.stack.errors import StackError
from deployments.local.stack.service import Service

KAFKA_CONF_DIR = LOCAL_DIR / "kafka"
KAFKA_POM = KAFKA_CONF_DIR / "pom.xml"
KAFKA_PROPERTIES_TEMPLATE = KAFKA_CONF_DIR / "server.properties.template"
KAFKA_LOG4J_CONFIG = KAFKA_CONF_DIR / "log4j2.properties"

_QUIET_LOGGER = logging.getLogger("votes.local_stack.librdkafka")
_QUIET_LOGGER.addHandler(logging.NullHandler())
_QUIET_LOGGER.propagate = False


class Kafka(Service):
    name = "kafka"
    startup_timeout_s = 90.0
    port_variables = "VOTES_KAFKA_PORT / VOTES_KAFKA_CONTROLLER_PORT"

    @property
    def libs(self) -> Path:
        return self.config.root / "kafka" / "libs"

    @property
    def properties(self) -> Path:
        return self.config.root / "kafka" / "server.properties"

    def ports(self) -> tuple[int, ...]:
        return (self.config.kafka_port, self.config.kafka_controller_port)

    def install(self) -> None:
        """Copy the jars of kafka/pom.xml into libs/, again only when the pom changed."""
        pom_hash = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()
        stamp = self.libs / ".pom.sha256"
        if any(self.libs.glob("*.jar")) and stamp.exists() and stamp.read_text() == pom_hash:
            return
        version_match = re.search(
            r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text()
        )
        version = version_match.group(1) if version_match else "?"
        self._say(f"installing Kafka {version} jars from Maven Central into {show(self.libs)} ...")
        partial = self.libs.with_name("libs.partial")
        shutil.rmtree(partial, ignore_errors=True)
        installing.run(
            [
                installing.which("mvn", "kafka"), "-q", "-B", "-f", str(KAFKA_POM),
                f"-Dmaven.repo.local={self.config.cache_dir / 'm2'}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
            ],
            part="kafka",
        )  # fmt: skip
        (partial / ".pom.sha256").write_text(pom_hash)
        shutil.rmtree(self.libs, ignore_errors=True)  # no stale jars on the classpath
        partial.rename(self.libs)

    def prepare(self) -> None:
        """Render server.properties; format the KRaft storage the first time."""
        template = string.Template(KAFKA_PROPERTIES_TEMPLATE.read_text())
        self.properties.write_text(
            template.substitute(
                kafka_port=self.config.kafka_port,
                controller_port=self.config.kafka_controller_port,
                data_dir=self.data_dir,
            )
        )
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties))

    def is_ours(self, pid: int, argv: list[str]) -> bool:
        return "kafka.Kafka" in argv and str(self.properties) in argv

    def check(self, timeout_s: float, provision: bool) -> str | None:
        """The broker lists the topics, and both exist with their partition counts."""
        from confluent_kafka.admin import AdminClient, NewTopic

        cfg = self.config
        admin = AdminClient(quiet_admin_config(cfg.kafka_bootstrap))
        topics = admin.list_topics(timeout=timeout_s).topics
        wanted = {cfg.kafka_topic: cfg.kafka_partitions, cfg.kafka_dlq_topic: 1}
        missing = {name: n for name, n in wanted.items() if name not in topics}
        if missing and provision:
            new = [
                NewTopic(name, num_partitions=n, replication_factor=1)
                for name, n in missing.items()
            ]
            for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
                error = future.exception(timeout=timeout_s)
                if error is not None and "TOPIC_ALREADY_EXISTS" not in str(error):
                    return f"creating topic {name}: {error}"
            created = ", ".join(
                f"{name} ({n} partition{'s' if n > 1 else ''})" for name, n in missing.items()
            )
            self._say(f"kafka: created topics {created}")
            topics = admin.list_topics(timeout=timeout_s).topics
            missing = {name: n for name, n in wanted.items() if name not in topics}
        if missing:
            return f"topics missing: {', '.join(missing)}"
        for name, n in wanted.items():
            have = len(topics[name].partitions)
            if have != n:
                return f"topic {name} has {have} partitions, expected {n} (`clean` to recreate)"
        return None

    def _java(self, main_class: str, *args: str) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = (
            str(Path(java_home) / "bin" / "java")
            if java_home
            else installing.which("java", "kafka")
        )
        return [
            java,
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_LOG4J_CONFIG}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        """Format the KRaft log directory once; meta.properties marks it as done."""
        cluster_id = kafka_cluster_id()
        self._say(f"kafka: formatting storage {show(self.data_dir)} (cluster id {cluster_id})")
        command = self._java(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties)
        )
        with self.log_path.open("ab") as log:
            log.write(f"\n===== stack: formatting storage at {time.ctime()} =====\n".encode())
            log.flush()
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise StackError("kafka storage format failed", "kafka", self.log_path)


def kafka_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (Uuid.randomUuid)."""
    while True:
        encoded = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not encoded.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return encoded


def quiet_admin_config(bootstrap: str) -> dict[str, Any]:
    """AdminClient config that does not print librdkafka connection errors to stderr."""
    return {
        "bootstrap.servers": bootstrap,
        "socket.connection.setup.timeout.ms": 3000,
        "logger": _QUIET_LOGGER,
        "log_level": 0,
    }

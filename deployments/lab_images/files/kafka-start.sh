#!/bin/bash
# The lab's Kafka: one KRaft node (broker + controller) with the listener Strimzi makes for
# deployments/k8s/kafka/kafka.yaml, `scram` on 9094 (SASL_PLAINTEXT, SCRAM-SHA-512), and ACLs
# (StandardAuthorizer). The SCRAM users are written into the storage when it is formatted, on the
# first start with an empty volume: `admin` (a super user, for the setup Job) and the application's
# user KAFKA_USER_NAME. Replication and the controller listen on 127.0.0.1 only, in plain text.
set -euo pipefail
: "${KAFKA_ADVERTISED_HOST:?the pod IP (status.podIP)}"
: "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_USER_NAME:?}" "${KAFKA_USER_PASSWORD:?}"
DATA=/var/lib/kafka/data
mkdir -p "$DATA"
if [ "$(id -u)" = 0 ]; then
  chown -R kafka:kafka /var/lib/kafka
  exec setpriv --reuid=kafka --regid=kafka --init-groups "$0" "$@"
fi
PROPERTIES=/var/lib/kafka/server.properties
cat > "$PROPERTIES" <<PROPERTIES
process.roles=broker,controller
node.id=0
controller.quorum.voters=0@127.0.0.1:9093
listeners=SCRAM://:9094,REPLICATION://127.0.0.1:9091,CONTROLLER://127.0.0.1:9093
advertised.listeners=SCRAM://${KAFKA_ADVERTISED_HOST}:9094,REPLICATION://127.0.0.1:9091
listener.security.protocol.map=SCRAM:SASL_PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=REPLICATION
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.scram.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.scram.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
log.dirs=${DATA}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
PROPERTIES
JAVA=(java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true
      -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*')
if [ ! -e "$DATA/meta.properties" ]; then
  "${JAVA[@]}" kafka.tools.StorageTool format -c "$PROPERTIES" \
    -t "$("${JAVA[@]}" kafka.tools.StorageTool random-uuid)" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]" \
    --add-scram "SCRAM-SHA-512=[name=${KAFKA_USER_NAME},password=${KAFKA_USER_PASSWORD}]"
fi
exec "${JAVA[@]}" kafka.Kafka "$PROPERTIES"

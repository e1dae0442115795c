#!/bin/sh
# The lab's MongoDB stand-in: FerretDB on SQLite in /data/db (the volume mongodb.yaml mounts),
# run as the ferretdb user. Its only login is the application's: FerretDB creates the user
# FERRETDB_SETUP_USERNAME in FERRETDB_SETUP_DATABASE on the first start (--setup-*), and checks
# passwords with SCRAM (--test-enable-new-auth), so the MongoDB URL of votes-secrets works as is.
set -eu
mkdir -p /data/db /data/state
if [ "$(id -u)" = 0 ]; then
  chown -R ferretdb:ferretdb /data
  exec setpriv --reuid=ferretdb --regid=ferretdb --init-groups "$0" "$@"
fi
exec /usr/local/bin/ferretdb \
  --handler=sqlite --sqlite-url=file:/data/db/ --state-dir=/data/state \
  --listen-addr=:27017 --debug-addr=- --telemetry=disable --log-format=console \
  --test-enable-new-auth "$@"

#!/bin/sh
# The lab's stand-in for the official redis image's docker-entrypoint.sh, whose behaviour
# deployments/k8s/redis.yaml relies on: a first argument that is a flag means redis-server, and
# redis-server started as root drops to the redis user after taking over its data directory.
set -eu
case "${1:-}" in
  -*) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
  chown -R redis:redis /data
  umask 0077
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"

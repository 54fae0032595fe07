#!/bin/sh
# As the official image's entrypoint: redis-server or redis-sentinel started as root runs as `redis`.
set -e
if [ "$(id -u)" = 0 ] && { [ "$1" = redis-server ] || [ "$1" = redis-sentinel ]; }; then
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"

#!/usr/bin/env bash
# End-to-end: queue_test.sh on NATS JetStream (a nats-server it starts itself).
# Usage: queue_nats_test.sh path/to/vigil
QUEUE_BACKEND=nats exec bash "$(dirname "$0")/queue_test.sh" "$@"

#!/usr/bin/env bash
# Shell functions shared by the suites that need a Docker engine of their own
# (test/engine/run.sh, test/supervisors/run.sh): install it, start a dockerd in
# a fresh directory with no bridge and no iptables rules, and always stop it
# again, leaving no container, image, service, swarm, network or daemon
# behind. Source it after setting SUITE (the name messages start with) and
# `set -euo pipefail`; then engine_checks, engine_install [extra packages],
# `trap engine_cleanup EXIT`, engine_start.

skip() {
  if [ "${CI:-}" = true ]; then
    echo "$SUITE: cannot run ($1), and CI=true: failing" >&2
    exit 1
  fi
  echo "$SUITE: skipped: $1 (set CI=true to make this a failure)"
  exit 0
}

engine_checks() {
  [ "$(id -u)" = 0 ] || skip "starting dockerd needs root"
  grep -qE '^cgroup2? ' /proc/mounts || skip "no cgroup file system mounted"
  [ "$(uname -s)" = Linux ] || skip "not Linux"
}

# docker.io brings dockerd, containerd, runc and docker-init; busybox-static is
# the image's shell and coreutils; tini-static is the init the README recipes
# use. Extra packages (arguments) are installed too; each is named by the
# command it brings: "debootstrap" checks for /usr/sbin/debootstrap.
engine_install() {
  local extra="$*" missing=
  for p in $extra; do command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || missing=1; done
  if [ -n "$missing" ] || ! [ -x /usr/sbin/dockerd ] || ! [ -x /usr/bin/docker ] || ! [ -x /bin/busybox ] || ! [ -x /usr/bin/tini-static ]; then
    command -v apt-get >/dev/null || skip "no dockerd and no apt-get to install it"
    export DEBIAN_FRONTEND=noninteractive
    # The packages must not start the system's docker service: this test runs its own.
    NO_START=
    if ! [ -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && NO_START=1
    fi
    install() { timeout 150 apt-get install -y -qq --no-install-recommends docker.io busybox-static tini $extra >/dev/null; }
    installed=0
    install || { timeout 120 apt-get update -qq && install; } || installed=$?
    [ -z "$NO_START" ] || rm -f /usr/sbin/policy-rc.d
    [ "$installed" = 0 ] || skip "apt-get install docker.io busybox-static tini $extra failed"
  fi
}
# /usr/local/bin/docker, where present, is a newer client that warns against this daemon.
DOCKER=/usr/bin/docker

export ENGINE_DOCKER="$DOCKER"
WORK=
DOCKERD_PID=

d() { timeout "${T:-30}" "$DOCKER" "$@"; }

engine_cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    # What the test removes itself; removed again here in case it failed midway.
    services=$(d service ls -q 2>/dev/null)
    [ -z "$services" ] || d service rm $services >/dev/null
    T=60 d swarm leave --force >/dev/null 2>&1
    containers=$(d ps -aq)
    [ -z "$containers" ] || T=60 d rm -f $containers >/dev/null
    # The images by id; their intermediate layers go with them. A build the
    # daemon was still finishing can commit one more: a few passes.
    for _ in 1 2 3 4 5; do
      images=$(d images -aq | sort -u)
      [ -n "$images" ] || break
      T=60 d rmi -f $(d images -q | sort -u) $images >/dev/null 2>&1
      sleep 1
    done
    d network rm docker_gwbridge >/dev/null 2>&1
    left="containers: $(d ps -aq | wc -l), images: $(d images -aq | wc -l), services: $(d service ls -q 2>/dev/null | wc -l), swarm: $(d info --format '{{.Swarm.LocalNodeState}}')"
    echo "$SUITE: the engine is left with $left"
    case "$left" in
      "containers: 0, images: 0, services: 0, swarm: inactive") ;;
      *) echo "$SUITE: the engine was not left empty" >&2; [ "$status" != 0 ] || status=1 ;;
    esac
    # containerd is dockerd's child; its pid is read before dockerd goes.
    CONTAINERD_PID=$(cat "$WORK/exec/containerd/containerd.pid" 2>/dev/null)
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      echo "$SUITE: dockerd did not stop in 15 s; killing it" >&2
      kill -KILL "$DOCKERD_PID"
    fi
    for _ in $(seq 1 50); do
      { [ -n "$CONTAINERD_PID" ] && kill -0 "$CONTAINERD_PID" 2>/dev/null; } || break
      sleep 0.1
    done
    if [ -n "$CONTAINERD_PID" ] && kill -0 "$CONTAINERD_PID" 2>/dev/null; then kill -KILL "$CONTAINERD_PID"; fi
    wait "$DOCKERD_PID" 2>/dev/null
    for pid in $DOCKERD_PID $CONTAINERD_PID; do
      if kill -0 "$pid" 2>/dev/null; then
        echo "$SUITE: process $pid is still running" >&2
        [ "$status" != 0 ] || status=1
      fi
    done
  fi
  if [ -n "$WORK" ]; then
    # Mounts the daemon left (overlay layers, network namespaces), innermost first.
    grep -o " $WORK[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    ip link delete docker_gwbridge 2>/dev/null
    rm -rf "$WORK"
    echo "$SUITE: dockerd stopped, $WORK removed"
  fi
  exit "$status"
}

engine_start() {
  WORK=$(mktemp -d /tmp/pulse-engine.XXXXXX)
  export DOCKER_HOST="unix://$WORK/docker.sock"
  # No bridge, no iptables rules, no ip_forward change: the containers have only
  # their loopback, and the host's network settings are not touched.
  /usr/sbin/dockerd --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
    -H "$DOCKER_HOST" --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
    --ip-masq=false --userland-proxy=false >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  up=
  until_s=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$until_s" ]; do
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    if T=5 d version >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
  done
  if [ -z "$up" ]; then
    tail -20 "$WORK/dockerd.log" >&2
    kill -0 "$DOCKERD_PID" 2>/dev/null || DOCKERD_PID=
    skip "dockerd did not start (its log is above)"
  fi
  echo "$SUITE: dockerd $(d version --format '{{.Server.Version}}') up as pid $DOCKERD_PID (${SECONDS}s)"
}

# engine_run_tests <seconds needed> <node --test arguments...>: starts the
# engine (stopped again at exit, or at INT/TERM, which end the tests at once),
# compiles dist/ (images get `npm pack` output: dist/ as the sources say now),
# and runs the tests within what is left of STEP_DEADLINE.
engine_run_tests() {
  local need=$1 left
  shift
  TEST_PID=
  trap engine_cleanup EXIT
  # A foreground child would defer the trap: the tests run in the background.
  trap '[ -z "$TEST_PID" ] || kill -TERM "$TEST_PID" 2>/dev/null; exit 130' INT TERM
  engine_start
  timeout 120 npm run --silent compile
  left=$((STEP_DEADLINE - SECONDS - 20))
  [ "$left" -gt "$need" ] || { echo "$SUITE: no time left for the tests (${SECONDS}s used)" >&2; exit 1; }
  timeout -k 5 "$left" node --test "$@" &
  TEST_PID=$!
  wait "$TEST_PID"
}

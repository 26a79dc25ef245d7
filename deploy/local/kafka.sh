#!/usr/bin/env bash
# Run a real single-node Apache Kafka 4 (KRaft, broker + controller in one JVM) on loopback,
# without Docker: the jars come from Maven Central once, then everything is local.
#
#   deploy/local/kafka.sh start    # no-op if a broker already answers on 127.0.0.1:$KAFKA_PORT
#   deploy/local/kafka.sh status   # exit 0 when the broker serves metadata
#   deploy/local/kafka.sh stop
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), LOYALTY_DATA_DIR (<repo>/.data),
# LOYALTY_CACHE_DIR (<repo>/.cache), KAFKA_HEAP ("-Xms256m -Xmx768m"), KAFKA_HOME (use its libs/
# instead of downloading), PYTHON (<repo>/.venv/bin/python, needs aiokafka), JAVA_HOME, KAFKA_START_TIMEOUT (90).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
LOYALTY_DATA_DIR="${LOYALTY_DATA_DIR:-$REPO_ROOT/.data}"
LOYALTY_CACHE_DIR="${LOYALTY_CACHE_DIR:-$REPO_ROOT/.cache}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx768m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
PYTHON="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
# Absolute, because server.properties and the detached JVM must not depend on the caller's cwd.
LOYALTY_DATA_DIR="$(realpath -m "$LOYALTY_DATA_DIR")"
LOYALTY_CACHE_DIR="$(realpath -m "$LOYALTY_CACHE_DIR")"

KAFKA_DIR="$LOYALTY_DATA_DIR/kafka"
LOG_DIRS="$KAFKA_DIR/data"
LOG_FILE="$KAFKA_DIR/kafka.log"
PID_FILE="$KAFKA_DIR/kafka.pid"
CLUSTER_ID_FILE="$KAFKA_DIR/cluster-id"
SERVER_PROPERTIES="$KAFKA_DIR/server.properties"
LIBS_DIR="$LOYALTY_CACHE_DIR/kafka-libs"
LIBS_MARKER="$LIBS_DIR/.complete"
POM="$SCRIPT_DIR/kafka-pom.xml"
LOG4J_CONFIG="$SCRIPT_DIR/log4j2.properties"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: $*" >&2; exit 1; }

check_python() {
    if [[ ! -x "$PYTHON" ]] && ! command -v "$PYTHON" >/dev/null 2>&1; then
        die "no Python at $PYTHON (set PYTHON to an interpreter with aiokafka, or create the project's .venv)"
    fi
    "$PYTHON" -c 'import aiokafka' 2>/dev/null \
        || die "$PYTHON cannot import aiokafka (install the project's dependencies or set PYTHON)"
}

# True when a broker on $BOOTSTRAP serves metadata within $1 seconds.
broker_answers() {
    # A refused connection means no broker at all: answer at once instead of retrying for $1 s.
    (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null || return 1
    "$PYTHON" "$SCRIPT_DIR/wait_kafka.py" --bootstrap "$BOOTSTRAP" --timeout "$1" --quiet
}

# The pid from the pid file, if that process is alive and is our Kafka (pids get reused).
running_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

find_java() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        JAVA="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        JAVA="$(command -v java)"
    else
        die "Java 17+ is needed to run Kafka without Docker (Debian: apt-get install -y openjdk-17-jre-headless).
Or, with Docker: docker compose -f deploy/compose.yaml up"
    fi
    local version major
    version="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${version%%.*}"
    if [[ "$major" == 1 ]]; then major="$(echo "$version" | cut -d. -f2)"; fi
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 17)); then
        die "Kafka 4 needs Java 17+, $JAVA is $version (set JAVA_HOME).
Or, with Docker: docker compose -f deploy/compose.yaml up"
    fi
}

# Sets CLASSPATH_GLOB to a folder of Kafka jars, downloading them once if needed.
resolve_libs() {
    if [[ -n "${KAFKA_HOME:-}" && -d "$KAFKA_HOME/libs" ]]; then
        CLASSPATH_GLOB="$KAFKA_HOME/libs/*"
        return
    fi
    # The marker holds the pom's checksum so that bumping a version in the pom refetches.
    local want
    want="$(sha256sum "$POM" | cut -d' ' -f1)"
    if [[ ! -f "$LIBS_MARKER" || "$(cat "$LIBS_MARKER")" != "$want" ]]; then
        command -v mvn >/dev/null 2>&1 \
            || die "Maven is needed once to fetch the Kafka jars (apt-get install -y maven), or set KAFKA_HOME to an unpacked Kafka 4 release"
        say "fetching Kafka jars from Maven Central into $LIBS_DIR (first run only, may take a few minutes)"
        local partial="$LIBS_DIR.partial" mvn_log="$LOYALTY_CACHE_DIR/kafka-libs-maven.log"
        rm -rf "$partial"
        mkdir -p "$partial"
        # Maven's output goes to a file: even with -B -q, Debian's Maven 3.8 prints stray colour codes.
        if ! mvn -B -q -f "$POM" \
            org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
            -DoutputDirectory="$partial" -DincludeScope=runtime >"$mvn_log" 2>&1; then
            tail -n 40 "$mvn_log" >&2
            die "downloading the Kafka jars failed (Maven's log: $mvn_log); rerun to retry"
        fi
        rm -rf "$LIBS_DIR"
        mv "$partial" "$LIBS_DIR"
        echo "$want" >"$LIBS_MARKER"
    fi
    CLASSPATH_GLOB="$LIBS_DIR/*"
}

write_server_properties() {
    cat >"$SERVER_PROPERTIES" <<EOF
# Written by deploy/local/kafka.sh at every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$LOG_DIRS
num.partitions=12
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumer groups form immediately instead of after the default 3 s, which keeps tests fast.
group.initial.rebalance.delay.ms=0
# The default 128 MB cleaner buffer is a large share of a small dev heap.
log.cleaner.dedupe.buffer.size=33554432
EOF
}

ensure_cluster_id() {
    if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
        # Same shape as Kafka's Uuid: URL-safe base64 of 16 random bytes, unpadded, never starting with '-'.
        "$PYTHON" - >"$CLUSTER_ID_FILE" <<'EOF'
import base64, os
while True:
    cid = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not cid.startswith("-"):
        print(cid)
        break
EOF
    fi
    CLUSTER_ID="$(cat "$CLUSTER_ID_FILE")"
}

print_log_tail() {
    if [[ -f "$LOG_FILE" ]]; then
        echo "---- last lines of $LOG_FILE ----" >&2
        tail -n 30 "$LOG_FILE" >&2
        # The cause is often above the tail, buried under a stack trace and shutdown messages.
        if grep -qE '^\[[^]]*\] (ERROR|FATAL) ' "$LOG_FILE"; then
            echo "---- errors in $LOG_FILE ----" >&2
            grep -E '^\[[^]]*\] (ERROR|FATAL) ' "$LOG_FILE" | tail -n 5 >&2
        fi
        echo "----" >&2
    fi
}

# Waits until the broker serves metadata; gives up early if the process dies.
wait_until_ready() {
    local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if broker_answers 3; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "kafka.sh: Kafka (pid $pid) exited during startup" >&2
            print_log_tail
            rm -f "$PID_FILE"
            return 1
        fi
        sleep 0.5
    done
    echo "kafka.sh: Kafka (pid $pid) did not serve metadata on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s" >&2
    print_log_tail
    return 1
}

cmd_start() {
    check_python
    if broker_answers 5; then
        say "a broker already answers on $BOOTSTRAP; using it"
        return 0
    fi
    mkdir -p "$KAFKA_DIR" "$LOG_DIRS"

    # Serialise concurrent starts (e.g. a test run and `make run`); fd 9 is closed for the JVM below
    # so the lock does not outlive this script.
    exec 9>"$KAFKA_DIR/start.lock"
    flock 9

    local pid
    if pid="$(running_pid)"; then
        say "Kafka (pid $pid) is already starting; waiting for it"
        wait_until_ready "$pid" || exit 1
        say "running on $BOOTSTRAP (pid $pid)"
        return 0
    fi

    find_java
    resolve_libs
    write_server_properties
    ensure_cluster_id

    # shellcheck disable=SC2086  # KAFKA_HEAP is a list of JVM flags
    "$JAVA" $KAFKA_HEAP -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$CLASSPATH_GLOB" \
        kafka.tools.StorageTool format --standalone -t "$CLUSTER_ID" -c "$SERVER_PROPERTIES" \
        --ignore-formatted >"$KAFKA_DIR/format.log" 2>&1 \
        || { cat "$KAFKA_DIR/format.log" >&2; die "formatting $LOG_DIRS failed"; }

    if [[ -f "$LOG_FILE" ]]; then mv -f "$LOG_FILE" "$LOG_FILE.1"; fi
    # setsid: own session, so a Ctrl-C or hang-up in the caller's terminal does not reach the broker.
    # All of stdin/stdout/stderr are redirected so callers that capture our output are not held open.
    # The inner shell writes its own pid and execs java, so the pid file names the JVM itself.
    # shellcheck disable=SC2016
    nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        "$JAVA" $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
        -cp "$CLASSPATH_GLOB" kafka.Kafka "$SERVER_PROPERTIES" \
        </dev/null >"$LOG_FILE" 2>&1 9>&- &

    local waited=0
    until pid="$(running_pid)"; do
        if ((waited >= 50)); then
            echo "kafka.sh: Kafka did not start" >&2
            print_log_tail
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    say "started Kafka (pid $pid), waiting up to ${KAFKA_START_TIMEOUT}s for $BOOTSTRAP"
    wait_until_ready "$pid" || exit 1
    say "running on $BOOTSTRAP (pid $pid, data in $KAFKA_DIR)"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        say "not running (no live pid in $PID_FILE)"
        return 0
    fi
    say "stopping Kafka (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "still alive after 30s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    say "stopped"
}

cmd_status() {
    check_python
    local pid
    if broker_answers 3; then
        if pid="$(running_pid)"; then
            say "running on $BOOTSTRAP (pid $pid)"
        else
            say "running on $BOOTSTRAP (not started by this script)"
        fi
        return 0
    fi
    if pid="$(running_pid)"; then
        say "not answering on $BOOTSTRAP yet (pid $pid is alive; see $LOG_FILE)"
    else
        say "not running"
    fi
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 {start|stop|status}" >&2
        exit 2
        ;;
esac

#!/bin/sh
# Registers what insuranceflow needs on a Temporal cluster: the namespace and
# the Keyword search attributes its policy workflows set. Idempotent: what
# exists is left alone, so compose runs it on each `up`; `make test-cluster`
# runs the same script. An attribute that exists with another type is an
# error to fix by hand (the worker refuses to start on it, too).
#
# POSIX sh: it runs in the temporalio/admin-tools image (busybox) and here.
# Environment:
#   TEMPORAL_ADDRESS     frontend host:port (127.0.0.1:7233)
#   TEMPORAL_NAMESPACE   namespace to create (default)
#   TEMPORAL_RETENTION   how long closed policy histories are kept (720h)
#   REGISTER_WAIT        seconds to wait for the server and for each step (120)
set -eu
address=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
ns=${TEMPORAL_NAMESPACE:-default}
retention=${TEMPORAL_RETENTION:-720h}
wait_s=${REGISTER_WAIT:-120}
attributes="BizId PolicyState InsuranceType CallbackState"

tctl() { temporal "$@" --address "$address" --command-timeout 10s; }

# retry CMD...: the frontend answers before its namespace and search
# attribute caches have caught up, so each step is retried for a while. The
# last attempt's output is shown if all fail.
retry() {
  n=0
  until out=$("$@" 2>&1); do
    n=$((n + 1))
    if [ "$n" -ge "$wait_s" ]; then
      echo "$out" >&2
      return 1
    fi
    sleep 1
  done
}

# attribute_type NAME prints NAME's type in the namespace, or nothing.
attribute_type() {
  listed=$(tctl operator search-attribute list --namespace "$ns") || return 1
  echo "$listed" | awk -v name="$1" '$1 == name { print $2 }'
}

all_listed() {
  listed=$(tctl operator search-attribute list --namespace "$ns") || return 1
  for sa in $attributes; do
    echo "$listed" | awk -v name="$sa" '$1 == name { found = 1 } END { exit !found }' || return 1
  done
}

echo "temporal-register: waiting for $address"
retry tctl operator cluster health || { echo "temporal-register: $address not healthy after ${wait_s}s" >&2; exit 1; }

if tctl operator namespace describe --namespace "$ns" >/dev/null 2>&1; then
  echo "temporal-register: namespace $ns exists"
else
  echo "temporal-register: creating namespace $ns (retention $retention)"
  retry tctl operator namespace create --namespace "$ns" --retention "$retention" ||
    { echo "temporal-register: could not create namespace $ns" >&2; exit 1; }
fi

for sa in $attributes; do
  retry attribute_type "$sa" || { echo "temporal-register: cannot list the search attributes of $ns" >&2; exit 1; }
  have=$out
  case $have in
    Keyword) echo "temporal-register: search attribute $sa exists" ;;
    "")
      echo "temporal-register: creating search attribute $sa (Keyword)"
      # One attribute per call: given several --name flags, CLI 1.5 creates
      # only those that have a --type flag of their own.
      retry tctl operator search-attribute create --namespace "$ns" --name "$sa" --type Keyword ||
        { echo "temporal-register: could not create search attribute $sa" >&2; exit 1; }
      ;;
    *)
      echo "temporal-register: search attribute $sa has type $have, want Keyword; remove it" \
        "(temporal operator search-attribute remove --namespace $ns --name $sa) and run this again" >&2
      exit 1
      ;;
  esac
done

retry all_listed || { echo "temporal-register: search attributes not listed after creating them" >&2; exit 1; }
# Each service reloads its namespace registry every 2 s
# (system.namespaceCacheRefreshInterval); history must know the new
# attributes' SQL columns before the first workflow sets them.
sleep 3
echo "temporal-register: namespace $ns ready"

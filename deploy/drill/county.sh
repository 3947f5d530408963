#!/bin/sh
# A whole county on one machine, for a drill or a training room: county 610116 (长安区), its
# townships 610116001–003 and three villages under each (13 nodes), each a real fqnode with its
# own data folder, linked over mutual TLS on loopback, with a fresh PKI and an fqctl profile per
# node for a director called `drill`.
#
#   sh deploy/drill/county.sh [DIR]     (default ./county-drill; BASE_PORT=17400; FQNODE,
#                                        FQCTL: the binaries, default fqnode and fqctl on PATH)
#
# Node i listens on BASE+3i (operators), BASE+3i+1 (federation) and serves its metrics on
# BASE+3i+2. Ctrl-C stops them all. Then, in another terminal:
#
#   fqctl --profile DIR/profiles/610116001001.toml case register ...
#   fqctl --profile DIR/profiles/610116.toml stats --group-by child
#   fqctl --profile DIR/profiles/610116.toml links
#
# Drills to run: stop a village (kill its pid from DIR/pids) and watch the township's
# `links` and metrics; revoke a director (`fqctl pki revoke DIR/pki/op-...pem --dir DIR/pki`,
# the county's tls.crl is DIR/pki/crl.pem) and see it reach the villages; back up a village
# and restore it (README, "Backup and restore").
set -eu
dir=${1:-./county-drill}
base=${BASE_PORT:-17400}
fqnode=${FQNODE:-fqnode}
fqctl=${FQCTL:-fqctl}

mkdir -p "$dir/pki" "$dir/nodes" "$dir/data" "$dir/logs" "$dir/profiles"
dir=$(cd "$dir" && pwd)
"$fqctl" pki init --dir "$dir/pki" >/dev/null
# The county's CRL: an empty start (the drill revokes into it).
"$fqctl" pki operator 610116 intake nobody --dir "$dir/pki" >/dev/null
if [ ! -f "$dir/pki/crl.pem" ]; then
    "$fqctl" pki revoke "$dir/pki/op-610116-intake-nobody.pem" --dir "$dir/pki" >/dev/null
fi

codes=610116
for t in 001 002 003; do
    codes="$codes 610116$t"
    for v in 001 002 003; do codes="$codes 610116$t$v"; done
done

# The index of a node in $codes: the county 0; township t at 1+4(t-1); its villages after it.
index() {
    case ${#1} in
        6) echo 0 ;;
        9) t=${1#610116}; echo $((1 + 4 * (${t#00} - 1))) ;;
        12) t=$(echo "$1" | cut -c7-9); v=$(echo "$1" | cut -c10-12)
            echo $((1 + 4 * (${t#00} - 1) + ${v#00})) ;;
    esac
}

: > "$dir/pids"
stop() {
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$dir/pids"
}
trap 'stop; exit 0' INT TERM

for code in $codes; do
    i=$(index "$code")
    listen=$((base + 3 * i))
    "$fqctl" pki node "$code" --dir "$dir/pki" >/dev/null
    "$fqctl" pki operator "$code" director drill --dir "$dir/pki" >/dev/null
    parent=""
    crl=""
    case ${#code} in
        6) crl="crl = \"$dir/pki/crl.pem\"" ;;
        9) parent="https://127.0.0.1:$((base + 1))" ;;
        12) up=$(echo "$code" | cut -c1-9); parent="https://127.0.0.1:$((base + 3 * $(index "$up") + 1))" ;;
    esac
    cat > "$dir/nodes/$code.toml" <<CONF
code = "$code"
listen = "127.0.0.1:$listen"
federation_listen = "127.0.0.1:$((listen + 1))"
metrics_listen = "127.0.0.1:$((listen + 2))"
parent = "$parent"
data_dir = "$dir/data/$code"

[tls]
ca = "$dir/pki/ca.pem"
cert = "$dir/pki/node-$code.pem"
key = "$dir/pki/node-$code.key"
$crl
CONF
    cat > "$dir/profiles/$code.toml" <<PROF
endpoint = "https://127.0.0.1:$listen"
ca = "$dir/pki/ca.pem"
cert = "$dir/pki/op-$code-director-drill.pem"
key = "$dir/pki/op-$code-director-drill.key"
PROF
    "$fqnode" --config "$dir/nodes/$code.toml" > "$dir/logs/$code.out" 2> "$dir/logs/$code.log" &
    echo $! >> "$dir/pids"
done

# Every node prints its ready line once it serves.
for code in $codes; do
    tries=0
    until grep -q fengqiao-ready "$dir/logs/$code.out" 2>/dev/null; do
        tries=$((tries + 1))
        if [ $tries -gt 300 ]; then
            echo "node $code did not start: see $dir/logs/$code.log" >&2
            stop
            exit 1
        fi
        sleep 0.1
    done
done
echo "county drill: 13 nodes serving (profiles in $dir/profiles, logs in $dir/logs)"
for code in $codes; do
    i=$(index "$code")
    echo "  $code  operators https://127.0.0.1:$((base + 3 * i))  metrics http://127.0.0.1:$((base + 3 * i + 2))/metrics"
done
wait

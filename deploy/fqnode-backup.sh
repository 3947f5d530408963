#!/bin/sh
# Nightly backup of one fengqiao node, with rotation (run by deploy/fqnode-backup.timer).
#
#   FQCTL_PROFILE              fqctl profile of an admin certificate of this node
#                              (default /etc/fengqiao/backup.toml)
#   FENGQIAO_BACKUP_DIR        where backups go (default /var/backups/fengqiao); copy them off
#                              the machine too (等保: off-site backup)
#   FENGQIAO_BACKUP_KEEP_DAYS  backups older than this are removed (default 14), but the
#                              newest three are always kept
#
# Each backup is checked after it is written (`fqctl backup verify`); a failed backup or
# check exits non-zero, so the unit shows failed and the newer good ones are never rotated out
# by a bad night.
set -eu
dir=${FENGQIAO_BACKUP_DIR:-/var/backups/fengqiao}
keep=${FENGQIAO_BACKUP_KEEP_DAYS:-14}
profile=${FQCTL_PROFILE:-/etc/fengqiao/backup.toml}
fqctl=${FQCTL:-fqctl}

mkdir -p "$dir"
out="$dir/fengqiao-$(date +%Y%m%d-%H%M%S).fqbackup"
"$fqctl" --profile "$profile" backup --out "$out"
"$fqctl" backup verify "$out"

# Rotation: of the backups beyond the newest three, those older than $keep days.
ls -1t "$dir"/fengqiao-*.fqbackup 2>/dev/null | tail -n +4 | while IFS= read -r f; do
    if [ -n "$(find "$f" -prune -mtime +"$keep")" ]; then
        rm -f -- "$f"
    fi
done

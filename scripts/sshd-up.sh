#!/usr/bin/env bash
# Start a real OpenSSH server for tests: Debian's openssh-server on 127.0.0.1, port
# $HPCTL_SSHD_PORT (default 2222), with its own host key, config, throwaway client key
# and authorized_keys (root, public key only) in $HPCTL_SSHD_STATE (default
# /var/lib/hpctl-sshd). Logs at LogLevel VERBOSE to $HPCTL_SSHD_STATE/sshd.log: every new
# TCP connection writes one line containing "Connection from 127.0.0.1 port".
# Writes an ssh client config (Host hpctl-test) and prints its path:
#
#   ssh -F /var/lib/hpctl-sshd/ssh_config hpctl-test true
#
# Idempotent: a second run keeps the keys and restarts sshd only if its config changed.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

case "${1:-}" in
-h | --help)
	sed -n '2,11p' "$0"
	exit 0
	;;
"") ;;
*) die "unknown argument: $1" ;;
esac
require_root

S=${HPCTL_SSHD_STATE:-/var/lib/hpctl-sshd}
PORT=${HPCTL_SSHD_PORT:-2222}
HOST_ALIAS=${HPCTL_SSH_HOST:-hpctl-test}

ensure_packages openssh-server openssh-client rsync

mkdir -p "$S" /run/sshd
chmod 700 "$S"
chmod 755 /run/sshd

[ -f "$S/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C hpctl-test-host -f "$S/ssh_host_ed25519_key"
[ -f "$S/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C hpctl-test-client -f "$S/client_ed25519"
write_if_changed "$S/authorized_keys" 600 <"$S/client_ed25519.pub" || true
# Pre-seed known_hosts so that StrictHostKeyChecking=yes works as well as accept-new.
write_if_changed "$S/known_hosts" 644 <<EOF || true
[127.0.0.1]:$PORT $(cut -d' ' -f1-2 "$S/ssh_host_ed25519_key.pub")
EOF

SSHD_CHANGED=0
if write_if_changed "$S/sshd_config" 600 <<EOF; then SSHD_CHANGED=1; fi
# Written by hpctl scripts/sshd-up.sh: a test sshd, not the machine's own.
Port $PORT
ListenAddress 127.0.0.1
HostKey $S/ssh_host_ed25519_key
PidFile $S/sshd.pid
AuthorizedKeysFile $S/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
LogLevel VERBOSE
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
Subsystem sftp internal-sftp
EOF

write_if_changed "$S/ssh_config" 644 <<EOF || true
# Written by hpctl scripts/sshd-up.sh. Use: ssh -F $S/ssh_config $HOST_ALIAS true
Host $HOST_ALIAS
  HostName 127.0.0.1
  Port $PORT
  User root
  IdentityFile $S/client_ed25519
  IdentitiesOnly yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile $S/known_hosts
  BatchMode yes
  LogLevel ERROR
EOF

/usr/sbin/sshd -t -f "$S/sshd_config" || die "sshd config test failed"
if [ "$SSHD_CHANGED" -eq 1 ]; then
	stop_pidfile sshd "$S/sshd.pid"
fi
if ! pid_alive "$S/sshd.pid" sshd; then
	log "starting sshd on 127.0.0.1:$PORT"
	/usr/sbin/sshd -f "$S/sshd_config" -E "$S/sshd.log" </dev/null >/dev/null 2>&1
fi
ssh_ok() { ssh -F "$S/ssh_config" -o ConnectTimeout=5 "$HOST_ALIAS" true; }
wait_for 20 sshd ssh_ok || die "ssh -F $S/ssh_config $HOST_ALIAS true fails; see $S/sshd.log"

cat <<EOF
sshd ready on 127.0.0.1:$PORT (pid $(cat "$S/sshd.pid")).
  client config: $S/ssh_config   (ssh -F $S/ssh_config $HOST_ALIAS true)
  client key:    $S/client_ed25519
  log:           $S/sshd.log   (one "Connection from 127.0.0.1 port" line per TCP connection)
  stop:          scripts/sshd-down.sh [--purge]
EOF

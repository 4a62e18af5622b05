#!/bin/sh
# /init of the guest image that eucacore/guestimage.py builds: a busybox system in the
# initramfs, booted by the distribution kernel. It brings up eth0 with DHCP, reads its
# identity and user-data from the NoCloud seed (label cidata) and from the metadata service
# when that answers, runs a user-data that starts with #! as a script, and serves a page on
# port 80 and a shell on port 22. Every step prints one "EUCA-BOOT: ..." line on the console
# (ttyS0), for tests and for people reading GetConsoleOutput. The ACPI power button powers the
# guest off at once: the NC's stop and libvirt's reboot both press it. Once done, it hands
# PID 1 to busybox init, which reaps orphans. This file is also udhcpc's event script.

export PATH=/sbin:/bin:/usr/sbin:/usr/bin
IMDS=http://169.254.169.254/latest

mark() { echo "EUCA-BOOT: $*"; }

# Waits up to $1 seconds until the command $2... succeeds.
wait_until() {
    limit=$(($1 * 10))
    shift
    n=0
    until "$@"; do
        [ "$n" -ge "$limit" ] && return 1
        usleep 100000
        n=$((n + 1))
    done
}

carrier() { [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ]; }

early_mounts() {
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    mkdir -p /dev/pts /run /tmp /var/log /root/.ssh /seed /www
    mount -t devpts devpts /dev/pts
}

# /etc/modules lists the drivers in load order (dependencies first), as the image builder
# resolved them from modules.dep.
load_modules() {
    while read -r module; do
        insmod "/lib/modules/$module.ko" 2>/dev/null || mark "module $module failed"
    done < /etc/modules
}

# acpid runs /etc/acpi/PWRF/00000080 (poweroff -f) when the power button is pressed.
start_acpid() {
    acpid -l /var/log/acpid.log && mark "acpid"
}

# udhcpc runs this file again with the event as its argument ($interface, $ip, $mask,
# $router in the environment): configure the interface and note the address in /run/ip.
udhcpc_event() {
    case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        [ "$1" = bound ] && ip -4 addr flush dev "$interface"
        ip addr replace "$ip/${mask:-24}" dev "$interface"
        for gateway in $router; do
            ip route replace default via "$gateway" dev "$interface"
            break
        done
        echo "$ip" > /run/ip
        ;;
    esac
}

# The lease comes from udhcpc, which stays in the background to renew it.
dhcp() {
    if ! wait_until 10 test -e /sys/class/net/eth0; then
        mark "dhcp none (no eth0)"
        return 1
    fi
    ip link set lo up
    ip link set eth0 up
    # What udhcpc sends before the link is up is lost, and it would wait a second to resend.
    wait_until 5 carrier
    udhcpc -i eth0 -s /init -t 20 -T 1 -A 5 -b
    if [ -s /run/ip ]; then
        mark "dhcp $(cat /run/ip)"
    else
        mark "dhcp none"
        return 1
    fi
}

# The volume label of the ISO 9660 or FAT filesystem on block device $1, in lower case
# (busybox's findfs does not know ISO 9660 labels).
label_of() {
    at() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null; }
    if [ "$(at "$1" 32769 5)" = CD001 ]; then
        at "$1" 32808 32
    elif [ "$(at "$1" 82 5)" = FAT32 ]; then
        at "$1" 71 11
    elif [ "$(at "$1" 54 3)" = FAT ]; then
        at "$1" 43 11
    fi | tr -d ' ' | tr A-Z a-z
}

find_seed() {
    for sys in /sys/class/block/*; do
        dev=/dev/${sys##*/}
        [ "$(label_of "$dev")" = cidata ] || continue
        if mount -t iso9660 -o ro "$dev" /seed 2>/dev/null || mount -t vfat -o ro "$dev" /seed 2>/dev/null; then
            mark "seed $dev"
            return 0
        fi
        mark "seed $dev unreadable"
    done
    mark "seed none"
    return 1
}

# The value of a top-level "key: value" line of the seed's meta-data, unquoted.
meta() {
    [ -f /seed/meta-data ] && sed -n "s/^$1:[[:space:]]*//p" /seed/meta-data | head -n 1 | sed 's/^"\(.*\)"$/\1/'
}

# The items of the meta-data's public-keys list, one a line.
seed_public_keys() {
    [ -f /seed/meta-data ] && awk '
        /^public-keys:/ { inlist = 1; next }
        /^[^ ]/ { inlist = 0 }
        inlist && /^[[:space:]]*- / { sub(/^[[:space:]]*- /, ""); sub(/^"/, ""); sub(/"$/, ""); print }
    ' /seed/meta-data
}

# Fetches $IMDS/$1 into the file $2 within 2 seconds (busybox wget's own -T crashes).
imds() {
    timeout 2 wget -q -O "$2" "$IMDS/$1" 2>/dev/null
}

identity() {
    instance_id=$(meta instance-id)
    hostname=$(meta local-hostname)
    seed_public_keys > /root/.ssh/authorized_keys
    [ -f /seed/user-data ] && cp /seed/user-data /run/user-data
    if [ -s /run/ip ] && imds meta-data/instance-id /run/imds-instance-id && [ -s /run/imds-instance-id ]; then
        mark "metadata-service answered"
        instance_id=$(cat /run/imds-instance-id)
        imds meta-data/local-hostname /run/imds-hostname && hostname=$(cat /run/imds-hostname)
        imds meta-data/public-keys/0/openssh-key /run/imds-key && cat /run/imds-key >> /root/.ssh/authorized_keys
        imds user-data /run/imds-user-data && mv /run/imds-user-data /run/user-data
    else
        mark "metadata-service none"
    fi
    mark "instance-id ${instance_id:-unknown}"
    [ -n "$hostname" ] && hostname "$hostname" && mark "hostname $hostname"
    mark "public-keys $(grep -c . /root/.ssh/authorized_keys)"
}

run_user_data() {
    if [ ! -s /run/user-data ]; then
        mark "user-data none"
    elif [ "$(head -c 2 /run/user-data)" = "#!" ]; then
        chmod +x /run/user-data
        mark "user-data begin"
        /run/user-data < /dev/null
        mark "user-data end $?"
    else
        mark "user-data not a script"
    fi
}

serve() {
    cat > /www/index.html <<EOF
<html><head><title>$instance_id</title></head><body>
<h1>$instance_id</h1>
<p>host $(hostname), address $(cat /run/ip 2>/dev/null), kernel $(uname -r)</p>
</body></html>
EOF
    httpd -p 80 -h /www && mark "httpd 80"
    nc -ll -p 22 -e /bin/sh </dev/null >/dev/null 2>&1 &
    mark "shell 22"
}

case "$1" in
deconfig|bound|renew|leasefail|nak) udhcpc_event "$1"; exit 0 ;;
esac

early_mounts
mark "start $(uname -r)"
load_modules
start_acpid
dhcp
find_seed
identity
run_user_data
serve
mark "finished $(cut -d ' ' -f 1 /proc/uptime)"
# busybox init stays PID 1: it reaps orphans and idles (its inittab runs nothing more).
exec /sbin/init

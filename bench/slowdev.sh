#!/bin/bash
# Emulates a slow device: an ext4 image on a loop device, reads throttled
# with the cgroup v1 blkio controller (this machine's hierarchy; io.max is
# the v2 equivalent). Runs dedupe cold in the throttled cgroup.
set -e
D=$(dirname "$0")/../target/release/dedupe
IMG=${IMG:-/var/tmp/dedupe-slow.img}; MNT=/mnt/slow
if ! mountpoint -q $MNT; then
  [ -f $IMG ] || { truncate -s 3G $IMG; mkfs.ext4 -q $IMG; }
  mkdir -p $MNT; mount -o loop $IMG $MNT
fi
[ -d $MNT/tree ] || $D gen $MNT/tree --files 20000 --dirs 400 --sizes lognormal --median 16KiB --max-size 2MiB --dup-ratio 0.2 --seed 3 >/dev/null
LOOP=$(findmnt -n -o SOURCE $MNT); MM=$(lsblk -no MAJ:MIN $LOOP | tr -d ' ')
CG=/sys/fs/cgroup/blkio/dedupe-slow; mkdir -p $CG
echo "$MM ${RBPS:-20971520}" > $CG/blkio.throttle.read_bps_device
echo "$MM ${RIOPS:-400}" > $CG/blkio.throttle.read_iops_device
echo "device $LOOP ($MM) limited to $(cat $CG/blkio.throttle.read_bps_device | awk '{print $2/1048576}') MiB/s, $(cat $CG/blkio.throttle.read_iops_device | awk '{print $2}') IOPS"
for args in "" "-t 2" "-t 8" "-t 32"; do
  sync; echo 3 > /proc/sys/vm/drop_caches
  s=$(date +%s.%N)
  bash -c "echo \$\$ > $CG/cgroup.procs; exec $D --progress never -v $args $MNT/tree" >/dev/null 2>/tmp/slow.err
  e=$(date +%s.%N)
  printf "%-6s %6.2f s  %s\n" "${args:-default}" "$(echo "$e - $s" | bc)" "$(grep -o 'readers [^,]*(.*)\|[0-9]* readers' /tmp/slow.err | head -1)"
  [ -z "$args" ] && grep -A30 "^device" /tmp/slow.err | head -30
done

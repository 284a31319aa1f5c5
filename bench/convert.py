#!/usr/bin/env python3
"""Conversion benchmark: vmdisk against qemu-img, in the same run, on the same files.

Builds (once, cached in bench-data/) a dense 4 GiB raw disk holding 1.5 GiB of mixed data (half
random, half text-like, in runs of 1-8 MiB) and times each conversion with both tools: median
wall time of --runs runs, each on a settled machine (earlier outputs gone, page cache holding
only the input), peak RSS of each process (wait4), output size.
Every vmdisk output is checked with `qemu-img compare` (outside the timing).
Run by hand: ./dev bench [--runs N] [--only NAME]
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "bench-data")
VMDISK = os.path.join(ROOT, "target", "release", "vmdisk")
GiB, MiB = 1 << 30, 1 << 20
DISK_SIZE, DATA_SIZE = 4 * GiB, 3 * GiB // 2


def text_pool(rng, size):
    words = ("the of and to in is was for on that with as by at from his her which disk image cluster "
             "sector kernel boot root user file data block table header offset length virtual").split()
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + (".\n" if rng.random() < .3 else ", ")
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def make_disk(path):
    """Dense raw disk: every byte written (zeros too), data runs placed at random 4 KiB-aligned spots."""
    rng = random.Random(42)
    runs, total = [], 0
    while total < DATA_SIZE:
        n = min(rng.randint(1, 8) * MiB, DATA_SIZE - total)
        runs.append(n)
        total += n
    gaps = sorted(rng.randrange(0, (DISK_SIZE - DATA_SIZE) // 4096) * 4096 for _ in runs)
    pool = text_pool(rng, 64 * MiB)
    tmp = path + ".tmp"
    zeros = bytes(8 * MiB)
    with open(tmp, "wb") as f:
        pos, prev_gap = 0, 0
        for i, (gap, n) in enumerate(zip(gaps, runs)):
            z = gap - prev_gap
            prev_gap = gap
            while z > 0:
                f.write(zeros[:min(z, len(zeros))])
                z -= min(z, len(zeros))
            if i % 2 == 0:
                f.write(os.urandom(n))
            else:
                start = rng.randrange(0, len(pool) - n) if n < len(pool) else 0
                f.write(pool[start:start + n])
        rest = DISK_SIZE - f.tell()
        while rest > 0:
            f.write(zeros[:min(rest, len(zeros))])
            rest -= min(rest, len(zeros))
    os.rename(tmp, path)


def clean():
    for f in os.listdir(DATA):
        if f.startswith("out."):
            p = os.path.join(DATA, f)
            subprocess.run(["rm", "-rf", p], check=True)


def make_packages(raw, vmdk):
    """The packages users download, made once: an OVA of the streamOptimized disk (with its
    manifest), and a UEC tarball whose machine image is the test disk with an ext4 superblock
    written over its first 4 KiB (so it is an AMI), beside a kernel and a ramdisk."""
    ova, uec, ami = (os.path.join(DATA, n) for n in ("disk.ova", "uec.tar.gz", "ami.img"))
    if not os.path.exists(ova):
        with open(os.path.join(DATA, "disk.ovf"), "w") as f:
            f.write(OVF.format(size=os.path.getsize(vmdk)))
        digests = subprocess.run(["sha256sum", "disk.ovf", "disk.vmdk"], cwd=DATA, check=True,
                                 capture_output=True, text=True).stdout.split("\n")
        with open(os.path.join(DATA, "disk.mf"), "w") as f:
            for line in filter(None, digests):
                h, n = line.split()
                f.write(f"SHA256({n})= {h}\n")
        subprocess.run(["tar", "--format=ustar", "-cf", ova + ".tmp", "disk.ovf", "disk.vmdk", "disk.mf"],
                       cwd=DATA, check=True)
        os.rename(ova + ".tmp", ova)
    if not os.path.exists(uec):
        print("building the UEC tarball (once) ...", file=sys.stderr)
        fs = os.path.join(DATA, "fs.tmp")
        subprocess.run(["truncate", "-s", "64M", fs], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "cloudimg-rootfs", fs], check=True)
        subprocess.run(["cp", "--sparse=never", raw, ami], check=True)
        with open(fs, "rb") as f, open(ami, "r+b") as out_:
            out_.write(f.read(4096))
        os.remove(fs)
        with open(os.path.join(DATA, "vmlinuz"), "wb") as f:
            k = bytearray(1 << 20)
            k[0x1fe:0x200], k[0x202:0x206], k[0x206:0x208], k[0x1f1] = b"\x55\xaa", b"HdrS", b"\x0f\x02", 4
            f.write(k)
        with open(os.path.join(DATA, "initrd"), "wb") as f:
            f.write(b"070701" + b"0" * 104 + b"TRAILER!!!\0")
        subprocess.run(["tar", "-czf", uec + ".tmp", "ami.img", "vmlinuz", "initrd"], cwd=DATA, check=True)
        os.rename(uec + ".tmp", uec)
    return ova, uec, ami


def make_big_packages():
    """Packages with a 9 GiB member, made once: an OVA of a sparse raw disk (a pax header carries
    its size; the file keeps the holes) and a UEC tarball of a sparse 9 GiB ext4 image."""
    import tarfile
    size = 9 * GiB
    ova, uec = os.path.join(DATA, "big.ova"), os.path.join(DATA, "big-uec.tar.gz")
    if not os.path.exists(ova):
        ovf = OVF.replace("disk.vmdk", "big.img").replace('ovf:capacity="4"', 'ovf:capacity="9"') \
                 .replace("vmdk.html#streamOptimized", "raw").format(size=size).encode()
        info = tarfile.TarInfo("big.ovf")
        info.size = len(ovf)
        member = tarfile.TarInfo("big.img")
        member.size = size
        with open(ova + ".tmp", "wb") as f:
            f.write(info.tobuf(tarfile.PAX_FORMAT))
            f.write(ovf + bytes(-len(ovf) % 512))
            f.write(member.tobuf(tarfile.PAX_FORMAT))
            start = f.tell()
            for at in (0, size // 3, size - 4 * MiB):
                f.seek(start + at)
                f.write(os.urandom(4 * MiB))
            f.seek(start + size)
            f.write(bytes(1024))
        os.rename(ova + ".tmp", ova)
    if not os.path.exists(uec):
        print("building the 9 GiB UEC tarball (once) ...", file=sys.stderr)
        img = os.path.join(DATA, "big-ami.img")
        subprocess.run(["truncate", "-s", str(size), img], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True)
        with open(img, "r+b") as f:
            for at in (size // 3, size - 4 * MiB):
                f.seek(at)
                f.write(os.urandom(4 * MiB))
        subprocess.run(["tar", "-czf", uec + ".tmp", "big-ami.img", "vmlinuz"], cwd=DATA, check=True)
        os.rename(uec + ".tmp", uec)
        os.remove(img)
    return [("OVA, 9 GiB raw member", ova), ("UEC tar.gz, 9 GiB machine image", uec)]


OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="disk.vmdk" ovf:id="file1" ovf:size="{size}"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="4" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="bench"><Info>the benchmark disk</Info><Name>bench</Name>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>disk</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def settle(src):
    """Give every run the same machine: no earlier output on disk or in memory, nothing dirty,
    and only the input in the page cache. Without this, whichever tool runs second pays for
    reclaiming the first one's 1.5 GiB of output pages (measured: up to 2x slower), which skews
    the median towards the tool that more often runs first."""
    clean()
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass  # not root: the runs are noisier, the alternating order still evens them out
    warm(src)


def timed(cmd):
    """Run cmd; return (wall seconds, peak RSS MiB). Peak RSS comes from GNU time: a child forked
    straight from this Python process would inherit Python's high-water mark."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    err = p.stderr.decode()
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, int(err.strip().splitlines()[-1]) / 1024


def warm(path):
    with open(path, "rb") as f:
        while f.read(16 * MiB):
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", help="run only conversions whose name contains this")
    args = ap.parse_args()
    os.makedirs(DATA, exist_ok=True)
    raw = os.path.join(DATA, "disk.raw")
    if not os.path.exists(raw):
        print("building the 4 GiB test disk (once) ...", file=sys.stderr)
        make_disk(raw)
    # The same disk in the other input formats, made once by qemu-img.
    made = {}
    for name, args_ in (("disk.qcow2", ["-O", "qcow2"]),
                        ("disk.vmdk", ["-O", "vmdk", "-o", "subformat=streamOptimized"]),
                        ("disk.vhdx", ["-O", "vhdx"])):
        made[name] = os.path.join(DATA, name)
        if not os.path.exists(made[name]):
            subprocess.run(["qemu-img", "convert", *args_, raw, made[name] + ".tmp"], check=True)
            os.rename(made[name] + ".tmp", made[name])
    qcow2 = made["disk.qcow2"]
    ova, uec, ami = make_packages(raw, made["disk.vmdk"])

    out = os.path.join(DATA, "out")
    # name, input, qemu-img args, vmdisk args (output appended)
    cases = [
        ("dense raw -> qcow2", raw, ["-O", "qcow2"], ["-O", "qcow2"]),
        ("qcow2 -> raw", qcow2, ["-O", "raw"], ["-O", "raw"]),
        ("raw -> qcow2 -c zlib", raw, ["-O", "qcow2", "-c"], ["-O", "qcow2", "-c"]),
        ("raw -> qcow2 -c zstd", raw, ["-O", "qcow2", "-c", "-o", "compression_type=zstd"],
         ["-O", "qcow2", "-c", "--compression-type", "zstd"]),
        ("streamOptimized vmdk -> qcow2", made["disk.vmdk"], ["-O", "qcow2"], ["-O", "qcow2"]),
        ("vhdx -> qcow2", made["disk.vhdx"], ["-O", "qcow2"], ["-O", "qcow2"]),
    ]
    # Packages: what users run today (unpack, then qemu-img convert) against vmdisk on the package.
    unpack = os.path.join(DATA, "out.unpacked")
    packages = [
        ("OVA (streamOptimized vmdk) -> qcow2", ova, made["disk.vmdk"],
         f"mkdir -p {unpack} && tar -xf {ova} -C {unpack} && qemu-img convert -O qcow2 {unpack}/disk.vmdk {out}.q"),
        ("UEC tarball AMI -> qcow2", uec, ami,
         f"mkdir -p {unpack} && tar -xzf {uec} -C {unpack} && qemu-img convert -O qcow2 {unpack}/ami.img {out}.q"),
    ]
    for name, src, truth, script in packages:
        cases.append((name, src, ["sh", "-c", script], ["-O", "qcow2"], truth))
    rows = []
    for case in cases:
        name, src, qargs, vargs = case[:4]
        truth = case[4] if len(case) > 4 else src
        if args.only and args.only not in name:
            continue
        q, v = [], []
        sizes = {}
        qcmd = qargs if qargs[0] == "sh" else ["qemu-img", "convert", *qargs, src, out + ".q"]
        for _ in range(args.runs):
            # Alternate who goes first, in case settle() cannot drop the page cache.
            order = [(q, out + ".q", qcmd),
                     (v, out + ".v", [VMDISK, "convert", *vargs, "--output", out + ".v", src])]
            for results, dest, cmd in (order if len(q) % 2 == 0 else order[::-1]):
                settle(src)
                results.append(timed(cmd))
                sizes[dest] = os.stat(dest).st_blocks * 512
                if dest.endswith(".v") and len(v) == 1:
                    check = subprocess.run(["qemu-img", "compare", "-q", truth, dest])
                    if check.returncode != 0:
                        sys.exit(f"{name}: vmdisk output differs from the source")
        qs, vs = statistics.median(t for t, _ in q), statistics.median(t for t, _ in v)
        qsize, vsize = sizes[out + ".q"], sizes[out + ".v"]
        rows.append((name, qs, vs, vs / qs, qsize / MiB, vsize / MiB, vsize / qsize,
                     max(m for _, m in q), max(m for _, m in v)))
        print(f"{name}: qemu-img {qs:.2f}s vmdisk {vs:.2f}s", file=sys.stderr)
    clean()

    # Memory as the disk grows: overlays of the test disk with 64 MiB more data at their far end.
    growth = []
    if not args.only or "memory" in args.only:
        for size in ("4G", "64G", "1T"):
            top = os.path.join(DATA, f"grow-{size}.qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", qcow2, "-F", "qcow2", top, size],
                           check=True)
            end = {"4G": 4 * GiB, "64G": 64 * GiB, "1T": 1024 * GiB}[size]
            subprocess.run(["qemu-io", "-c", f"write -P 0x5a {end - 64 * MiB} 64M", top],
                           check=True, stdout=subprocess.DEVNULL)
            for fmt in ("qcow2", "raw"):
                settle(qcow2)
                wall, rss = timed([VMDISK, "convert", "-O", fmt, "--output", out + ".v", top, qcow2])
                growth.append((size, fmt, wall, rss))
            os.remove(top)
        clean()

    # Memory with a 9 GiB member: an OVA whose raw disk is sparse (pax size record), and a UEC
    # tarball whose machine image is 9 GiB (the gzip stream decoded front to back).
    big = []
    if not args.only or "9 GiB" in args.only:
        for name, src in make_big_packages():
            settle(src)
            wall, rss = timed([VMDISK, "convert", "-O", "qcow2", "--output", out + ".v", src])
            big.append((name, os.path.getsize(src), wall, rss))
            clean()

    print(f"\n4 GiB disk, 1.5 GiB data, {os.cpu_count()} cores, median of {args.runs} runs, page cache warm\n")
    print("| conversion | qemu-img | vmdisk | time ratio | qemu-img output | vmdisk output | size ratio "
          "| qemu-img peak RSS | vmdisk peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, qs, vs, r, qm, vm, sr, qr, vr in rows:
        print(f"| {name} | {qs:.2f} s | {vs:.2f} s | **{r:.2f}x** | {qm:.0f} MiB | {vm:.0f} MiB | {sr:.2f}x "
              f"| {qr:.0f} MiB | {vr:.0f} MiB |")
    if big:
        print("\nvmdisk peak RSS converting a package with a 9 GiB member to qcow2\n")
        print("| package | package size | wall | vmdisk peak RSS |")
        print("|---|---|---|---|")
        for name, size, wall, rss in big:
            print(f"| {name} | {size / MiB:.0f} MiB | {wall:.2f} s | {rss:.0f} MiB |")
    if growth:
        print("\nvmdisk peak RSS as the virtual disk grows (overlay on the test disk + 64 MiB at its end, flattened)\n")
        print("| virtual size | output | wall | vmdisk peak RSS |")
        print("|---|---|---|---|")
        for size, fmt, wall, rss in growth:
            print(f"| {size} | {fmt} | {wall:.2f} s | {rss:.0f} MiB |")


if __name__ == "__main__":
    main()

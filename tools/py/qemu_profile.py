#!/usr/bin/env python3
"""Where a firmware's instructions go, function by function, from one run in QEMU.

    python3 tools/py/qemu_profile.py ELF MACHINE CPU [--top N]

    e.g. python3 tools/py/qemu_profile.py firmware/target/mps2-an386/release/generate \\
             mps2-an386 cortex-m4

QEMU logs each translated block's instructions once (`-d in_asm`) and each execution of a block
(`-d exec`, with `nochain` so that none is skipped); the two give an exact count per instruction
address, streamed through a pipe (the log of one `generate` run is several GB). Each address is
then named by `llvm-symbolizer` with inlining: a row is the innermost function, and the second
table the innermost two mote-core functions. The counts cover the whole run, loading included:
divide a per-step function's count by the number of steps. Needs `llvm-symbolizer` (LLVM 14 or
later) on PATH; instructions that QEMU splits over blocks (IT blocks, exceptions) may be off by a
few.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile


def count(elf, machine, cpu):
    """Executions per instruction address over one run."""
    tb_insns = {}
    runs = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        fifo = os.path.join(tmp, "log")
        os.mkfifo(fifo)
        qemu = subprocess.Popen(
            ["qemu-system-arm", "-machine", machine, "-cpu", cpu, "-nographic",
             "-semihosting-config", "enable=on,target=native",
             "-d", "in_asm,exec,nochain", "-D", fifo, "-kernel", elf],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        block = None
        with open(fifo) as log:
            for line in log:
                if line.startswith("Trace "):
                    # Trace N: host [cs_base/pc/flags/cflags] symbol
                    runs[int(line.split("[", 1)[1].split("/")[1], 16)] += 1
                elif line.startswith("IN:"):
                    block = []
                elif block is not None and line.startswith("0x"):
                    addr = int(line.split(":", 1)[0], 16)
                    if not block:
                        tb_insns.setdefault(addr, block)
                    block.append(addr)
                elif block is not None and not line.strip():
                    block = None
        qemu.wait()
    per_addr = collections.Counter()
    for pc, n in runs.items():
        for addr in tb_insns.get(pc, ()):
            per_addr[addr] += n
    return per_addr


def names(elf, addrs):
    """Inlined call chains (innermost first) for each address."""
    out = subprocess.run(
        ["llvm-symbolizer", "--obj=" + elf, "-f", "-i", "-C", "--output-style=JSON"],
        input="\n".join(hex(a) for a in addrs), capture_output=True, text=True, check=True)
    return [[f["FunctionName"] for f in json.loads(l)["Symbol"]] for l in out.stdout.splitlines()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("elf")
    ap.add_argument("machine")
    ap.add_argument("cpu")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    per_addr = count(a.elf, a.machine, a.cpu)
    addrs = sorted(per_addr)
    inner, pair = collections.Counter(), collections.Counter()
    for addr, chain in zip(addrs, names(a.elf, addrs)):
        n = per_addr[addr]
        inner[chain[0] if chain else "?"] += n
        core = [f for f in chain if "mote_core" in f][:2]
        pair[" < ".join(core) if core else (chain[0] if chain else "?")] += n
    total = sum(per_addr.values())
    print(f"{total:,} instructions")
    for table in (inner, pair):
        print()
        for name, n in table.most_common(a.top):
            print(f"{100 * n / total:6.2f}% {n:>12,}  {name[:120]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

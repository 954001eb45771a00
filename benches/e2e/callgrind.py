"""Instructions per frame from two callgrind profiles of the same server: benches/e2e/callgrind.sh.

    python3 callgrind.py NAME FRAMES_1 OUT_1 FRAMES_2 OUT_2 [--top 25]

OUT_i is the callgrind output of a whole server process that answered FRAMES_i frames (the
ACKs `tocsin load` counted). The two processes did the same start-up and shutdown, so the
differences of their counts divided by FRAMES_2 − FRAMES_1 are the cost of one frame: in
all, per object (the server's own binary, libc, …) and per function (self cost, the top
--top). Standard library only.

The format read (callgrind's own, "Callgrind Format Specification" in valgrind's docs):
`ob=`/`fn=` lines set the object and function of the cost lines that follow, with names
compressed as `(id) name` the first time and `(id)` after; `cob=`/`cfn=` name a callee in
the same name spaces; a `calls=` line is followed by one line with the inclusive cost of
that call, which is not the caller's own cost; `totals:` (or `summary:`) is the whole
process. Only the first event (Ir, instructions executed) is read.
"""

import re
import sys

COST_LINE = re.compile(r"^[0-9+\-*]")
NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")


def parse(path):
    """(total Ir, {object: Ir}, {(object, function): Ir}), self costs only."""
    names = {"ob": {}, "fn": {}}
    ob = fn = "?"
    positions = 1
    skip = False
    total = None
    by_fn = {}

    def name(space, text):
        m = NAMED.match(text)
        if not m:
            return text
        if m.group(2) is not None:
            names[space][m.group(1)] = m.group(2)
        return names[space].get(m.group(1), f"({m.group(1)})")

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if COST_LINE.match(line):
                if skip:
                    skip = False
                    continue
                parts = line.split()
                if len(parts) > positions:
                    key = (ob, fn)
                    by_fn[key] = by_fn.get(key, 0) + int(parts[positions])
            elif line.startswith("ob="):
                ob = name("ob", line[3:])
            elif line.startswith("cob="):
                name("ob", line[4:])
            elif line.startswith("fn="):
                fn = name("fn", line[3:])
            elif line.startswith("cfn="):
                name("fn", line[4:])
            elif line.startswith("calls="):
                skip = True
            elif line.startswith("positions:"):
                positions = len(line.split()) - 1
            elif line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
    by_ob = {}
    for (o, _), v in by_fn.items():
        by_ob[o] = by_ob.get(o, 0) + v
    if total is None:
        total = sum(by_ob.values())
    return total, by_ob, by_fn


def short(obj):
    return obj.rsplit("/", 1)[-1]


def main():
    args = sys.argv[1:]
    top = 25
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i : i + 2]
    if len(args) != 5:
        sys.exit(__doc__)
    label, n1, f1, n2, f2 = args[0], int(args[1]), args[2], int(args[3]), args[4]
    if n2 <= n1:
        sys.exit(f"{label}: the second run answered {n2} frames, not more than the first ({n1})")
    t1, o1, fn1 = parse(f1)
    t2, o2, fn2 = parse(f2)
    d = n2 - n1
    print(f"== {label}: {n1} frames {t1:,} instructions, {n2} frames {t2:,}")
    print(f"   per frame: {(t2 - t1) / d:,.0f} instructions in all (user space, every thread)")
    for o in sorted(set(o1) | set(o2), key=lambda o: -(o2.get(o, 0) - o1.get(o, 0))):
        per = (o2.get(o, 0) - o1.get(o, 0)) / d
        if abs(per) >= 1:
            print(f"   {per:>12,.0f}  {short(o)}")
    print(f"   top {top} functions, own instructions per frame:")
    rows = sorted(
        ((fn2.get(k, 0) - fn1.get(k, 0)) / d, k) for k in set(fn1) | set(fn2)
    )
    for per, (o, f) in reversed(rows[-top:]):
        text = f if len(f) <= 110 else f[:107] + "..."
        print(f"   {per:>12,.0f}  {text} [{short(o)}]")


if __name__ == "__main__":
    main()

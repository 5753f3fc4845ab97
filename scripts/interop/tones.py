#!/usr/bin/env python3
"""tones.py FILE.wav [--win 1.0] [--from S] [--to S] [--hz 440,1000,2300]
Plain-python Goertzel (Hann window) over a 16-bit mono WAV: per window, the level of each
tone in dBFS (a full-scale sine = 0 dBFS) and a floor = the loudest of a few off-tone bins
(630, 1630, 3070 Hz: not multiples of 20 Hz, where G.711 spurs of 440/1000/2300 fall). With --from/--to prints one line for that span only."""
import argparse, math, struct, wave

ap = argparse.ArgumentParser()
ap.add_argument("wav")
ap.add_argument("--win", type=float, default=1.0)
ap.add_argument("--from", dest="t0", type=float)
ap.add_argument("--to", dest="t1", type=float)
ap.add_argument("--hz", default="440,1000,2300")
ap.add_argument("--gaps", action="store_true", help="list runs of >= 10 ms of digital silence")
a = ap.parse_args()
tones = [float(x) for x in a.hz.split(",")]
floor_hz = [630.0, 1630.0, 3070.0]  # off every 20 Hz grid line the three tones and their G.711 products fall on

w = wave.open(a.wav)
assert w.getsampwidth() == 2, "16-bit WAV expected"
rate, ch = w.getframerate(), w.getnchannels()
raw = w.readframes(w.getnframes())
x = struct.unpack("<%dh" % (len(raw) // 2), raw)[::ch]


def level(seg, f):
    n = len(seg)
    k = 2 * math.cos(2 * math.pi * f / rate)
    s1 = s2 = 0.0
    for i, v in enumerate(seg):
        hw = 0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1))
        s0 = v * hw + k * s1 - s2
        s2, s1 = s1, s0
    p = s1 * s1 + s2 * s2 - k * s1 * s2
    amp = 4 * math.sqrt(max(p, 0.0)) / n
    return 20 * math.log10(amp / 32768) if amp > 0 else -200.0


def line(t0, seg):
    ls = [level(seg, f) for f in tones]
    fl = max(level(seg, f) for f in floor_hz)
    return "%7.2f  " % t0 + "  ".join("%6.0fHz %7.1f" % (f, l) for f, l in zip(tones, ls)) + "   floor %7.1f" % fl


if a.gaps:
    run = 0
    for i, v in enumerate(list(x) + [99999]):
        if abs(v) <= 8:
            run += 1
            continue
        if run >= rate // 100:
            print("silence %7.3f .. %7.3f s (%d ms)" % ((i - run) / rate, i / rate, 1000 * run // rate))
        run = 0
elif a.t0 is not None:
    i0, i1 = int(a.t0 * rate), int((a.t1 if a.t1 is not None else len(x) / rate) * rate)
    print(line(a.t0, x[i0:i1]))
else:
    n = int(a.win * rate)
    print("%s: %.2f s at %d Hz" % (a.wav, len(x) / rate, rate))
    for i in range(0, len(x) - n + 1, n):
        print(line(i / rate, x[i:i + n]))

#!/usr/bin/env python3
"""tone_pcap.py OUT.pcap [HZ=440] [SECONDS=10] [pcma|pcmu]
Writes a pcap of 20 ms G.711 RTP packets carrying a sine tone (-6 dBFS), for sipp's
play_pcap_audio (sipp rewrites addresses and ports; only payload and timing matter)."""
import math, struct, sys

out = sys.argv[1]
hz = float(sys.argv[2]) if len(sys.argv) > 2 else 440.0
secs = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
law = sys.argv[4] if len(sys.argv) > 4 else "pcma"


def alaw(s):
    sign = 0x80 if s >= 0 else 0
    if s < 0:
        s = -s - 1 if s > -32768 else 32767
    s >>= 3  # 13-bit magnitude
    if s < 32:
        v = s >> 1
    else:
        seg = int(math.log2(s)) - 4
        v = (seg << 4) | ((s >> seg) & 0x0F)
    return (v | sign) ^ 0x55


def ulaw(s):
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    seg = int(math.log2(s)) - 7
    return ~(sign | (seg << 4) | ((s >> (seg + 3)) & 0x0F)) & 0xFF


enc, pt = (alaw, 8) if law == "pcma" else (ulaw, 0)
f = open(out, "wb")
f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet
n = 0
for k in range(int(secs * 50)):
    payload = bytes(enc(int(16384 * math.sin(2 * math.pi * hz * (n + i) / 8000))) for i in range(160))
    n += 160
    rtp = struct.pack("!BBHII", 0x80, pt | (0x80 if k == 0 else 0), k & 0xFFFF, k * 160, 0x1234ABCD) + payload
    udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), k & 0xFFFF, 0, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
    eth = b"\x00" * 12 + b"\x08\x00" + ip
    t = k * 0.02
    f.write(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(eth), len(eth)) + eth)
f.close()

"""Generates the example app's images and font (deterministic: same bytes on every run).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install fonttools==4.55.0
    /tmp/venv/bin/python scripts/make-assets.py      # from examples/expo-app

Writes assets/otago-logo.png (32x32), assets/otago-logo@2x.png (64x64, the same ring at
scale 2) and assets/OtagoSans-Regular.ttf (a three-glyph font: .notdef, space, "O").
"""
import struct
import zlib
from pathlib import Path

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def ring_png(scale):
    """A teal ring on white, 32*scale pixels square, as an RGB PNG."""
    size = 32 * scale
    rows = b""
    for y in range(size):
        rows += b"\x00"
        for x in range(size):
            dx, dy = x / scale - 15.5 + (1 - 1 / scale) / 2, y / scale - 15.5 + (1 - 1 / scale) / 2
            inside = 64 <= dx * dx + dy * dy <= 196
            rows += bytes((0, 128, 128)) if inside else bytes((255, 255, 255))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def rectangle(pen, x0, y0, x1, y1):
    pen.moveTo((x0, y0))
    pen.lineTo((x0, y1))
    pen.lineTo((x1, y1))
    pen.lineTo((x1, y0))
    pen.closePath()


def font():
    """A TrueType font with three glyphs; fixed timestamps so the bytes never change."""
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "space", "O"])
    builder.setupCharacterMap({0x20: "space", 0x4F: "O"})
    glyphs = {}
    for name, draw in [
        (".notdef", lambda pen: rectangle(pen, 100, 0, 500, 700)),
        ("space", None),
        ("O", lambda pen: (rectangle(pen, 100, 0, 600, 700), rectangle(pen, 200, 100, 500, 600))),
    ]:
        pen = TTGlyphPen(None)
        if draw:
            draw(pen)
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({".notdef": (600, 100), "space": (300, 0), "O": (700, 100)})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "OtagoSans", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    builder.setupHead(unitsPerEm=1000, created=0, modified=0)
    path = ASSETS / "OtagoSans-Regular.ttf"
    builder.save(str(path))
    return path


if __name__ == "__main__":
    ASSETS.mkdir(exist_ok=True)
    (ASSETS / "otago-logo.png").write_bytes(ring_png(1))
    (ASSETS / "otago-logo@2x.png").write_bytes(ring_png(2))
    font()

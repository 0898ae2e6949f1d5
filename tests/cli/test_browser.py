"""The pictures as a reader sees them: ``--format svg`` and ``--format html`` rendered by a real
headless browser (Debian's chromium, which ``.ci/run`` installs), and the screenshot's pixels
checked: not blank, and the heatmap's reds and blues on screen. Skips without chromium."""
from __future__ import annotations

import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest

from cnngrad.render import heatmap

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
WINDOW = (1000, 800)


def screenshot(page, tmp_path) -> np.ndarray:
    """The browser's picture of ``page`` as an (height, width, 3) array of bytes."""
    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
                    f"--window-size={WINDOW[0]},{WINDOW[1]}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return read_png(png.read_bytes())


def read_png(data: bytes) -> np.ndarray:
    """A non-interlaced 8-bit RGB or RGBA PNG as an (height, width, 3) array (PNG spec §9 filters)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            compressed += body
        position += 12 + length
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(compressed), dtype=np.uint8).reshape(height, stride + 1)
    image = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if kind == 1:      # Sub: add the byte one pixel left, a running sum per channel
            line = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) % 256
        elif kind == 2:    # Up
            line = (line + previous) % 256
        elif kind in (3, 4):
            line = _unfilter_sequential(kind, line.tolist(), previous.tolist(), channels)
        image[y] = line
        previous = image[y]
    return image.reshape(height, width, channels)[..., :3]


def _unfilter_sequential(kind: int, line: list[int], above: list[int], bpp: int) -> list[int]:
    """Average (3) and Paeth (4), whose every byte needs the one before it reconstructed."""
    out = [0] * len(line)
    for i, byte in enumerate(line):
        left = out[i - bpp] if i >= bpp else 0
        up, corner = above[i], (above[i - bpp] if i >= bpp else 0)
        if kind == 3:
            out[i] = (byte + (left + up) // 2) % 256
            continue
        guess = left + up - corner
        p_left, p_up, p_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
        nearest = left if p_left <= p_up and p_left <= p_corner else up if p_up <= p_corner else corner
        out[i] = (byte + nearest) % 256
    return out


def count_near(image: np.ndarray, colour, within: int = 12) -> int:
    return int((np.abs(image.astype(int) - colour).max(axis=-1) <= within).sum())


@pytest.mark.parametrize("fmt", ["svg", "html"])
def test_the_browser_shows_heatmap_reds_and_blues(fmt, tmp_path):
    from cnngrad.cli import main
    page = tmp_path / f"backward.{fmt}"
    with open(page, "w", encoding="utf-8") as out, pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", out)
        with pytest.raises(SystemExit) as done:
            main(["backward", "configs/seed000_conv_relu_pool_fc_softmax.yaml", "--format", fmt])
    assert done.value.code == 0
    image = screenshot(page, tmp_path)
    assert image.shape == (WINDOW[1], WINDOW[0], 3)
    white = (image >= 250).all(axis=-1)
    assert 0.02 < 1 - white.mean() < 0.6                               # drawn on, and not a blank dark page
    # grad.fc1.weights has full-colour rows: +0.33..0.36 (blue) and their negatives (red)
    assert count_near(image, heatmap.HEAT[1]) > 500
    assert count_near(image, heatmap.HEAT[-1]) > 500
    dark = (image.max(axis=-1) < 90).sum()
    assert dark > 2000                                                 # text: titles, values, box labels

"""Markdown for the Prefect UI: its PNG references inlined as data: URIs, downscaled to fit a size budget.

The UI renders an artifact's Markdown in the researcher's browser, which cannot reach the worker's disk: a
relative `![x](plot.png)` makes it ask the UI server for `/artifacts/artifact/plot.png` (a 404). What both
UIs of Prefect 3.9.1 do show is a `data:image/png;base64,...` source: the V1 UI (prefect-design's
PMarkdownRenderer) turns a Markdown image token into an <img> with the source as written, and the V2 UI
(the default; react-markdown) lets `data:image/` through its urlTransform and its rehype-sanitize schema for
<img src> (prefect/server/ui*/assets, read at 3.9.1). The files on disk keep their relative links.

The server sets no size limit on an artifact's data, but the UI loads it whole, so each image gets a share
of a per-artifact budget: wider than MAX_WIDTH is scaled down, then a PNG over its share is re-encoded with a
256-colour palette and shrunk until it fits; one that cannot fit at MIN_WIDTH is left out with a note.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

from PIL import Image

IMAGE_REF = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+\.png)\)")
MAX_WIDTH = 1200  # px: twice the ~600 CSS px the UIs give a Markdown image, sharp on a high-DPI screen
MIN_WIDTH = 320  # px: below this a plot's labels are unreadable
MAX_IMAGE_BYTES = 400_000  # one image's data URI at most
MAX_ARTIFACT_BYTES = 2_000_000  # all images of one artifact together (the UI fetches an artifact whole)
PREFIX = "data:image/png;base64,"


def _encoded_len(n: int) -> int:
    return len(PREFIX) + 4 * ((n + 2) // 3)


def _png(im: Image.Image, width: int, palette: bool) -> bytes:
    if width < im.width:
        im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.LANCZOS)
    if palette:
        im = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_data_uri(path: Path, max_bytes: int = MAX_IMAGE_BYTES, max_width: int = MAX_WIDTH) -> str | None:
    """The PNG at `path` as a data URI of at most `max_bytes`; the file itself when it already fits, else
    scaled down (and paletted) step by step; None when even MIN_WIDTH pixels wide it does not fit."""
    raw = path.read_bytes()
    with Image.open(io.BytesIO(raw)) as im:
        im.load()
        if im.width <= max_width and _encoded_len(len(raw)) <= max_bytes:
            return PREFIX + base64.b64encode(raw).decode("ascii")
        width = min(im.width, max_width)
        while True:
            data = _png(im, width, palette=True)
            if _encoded_len(len(data)) <= max_bytes:
                return PREFIX + base64.b64encode(data).decode("ascii")
            if width <= MIN_WIDTH:
                return None
            width = max(MIN_WIDTH, int(width * 0.75))


def inline_images(markdown: str, folder: Path, max_total: int = MAX_ARTIFACT_BYTES,
                  max_image: int = MAX_IMAGE_BYTES) -> str:
    """`markdown` with every `![alt](name.png)` that names a file in `folder` replaced by a data URI (each
    image gets an equal share of `max_total`); a missing or oversized plot becomes a one-line note."""
    refs = IMAGE_REF.findall(markdown)
    if not refs:
        return markdown
    share = min(max_image, max_total // len({src for _, src in refs}))
    cache: dict[str, str] = {}

    def replace(m: re.Match[str]) -> str:
        alt, src = m["alt"], m["src"]
        if src.startswith(("data:", "http://", "https://")):
            return m[0]
        if src not in cache:
            path = Path(folder) / src
            if not path.is_file():
                cache[src] = f"_(plot `{src}` was not written)_"
            else:
                try:
                    uri = png_data_uri(path, share)
                except OSError as e:  # not a PNG Pillow can read
                    cache[src] = f"_(plot `{src}` could not be read: {e})_"
                else:
                    cache[src] = (f"![{alt}]({uri})" if uri else
                                  f"_(plot `{src}` left out here: over this page's size budget; it is in the run "
                                  "folder)_")
        return cache[src]

    return IMAGE_REF.sub(replace, markdown)

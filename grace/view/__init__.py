"""The trial viewer: every trial of a run as a researcher reads it, in one self-contained HTML file
(`RUN/trials.html`), and served for a browser by `grace view`."""

from grace.view.page import read_payload, viewer_html, write_viewer

__all__ = ["read_payload", "viewer_html", "write_viewer"]

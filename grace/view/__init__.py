"""The trial viewer: every trial of a run as a researcher reads it, in one self-contained HTML file
(`RUN/trials.html`, grace.view.page), and served for a browser by `grace view` (grace.view.serve). Nothing is
imported here: the report links to the viewer (grace.view.links) without loading the studies it reads."""

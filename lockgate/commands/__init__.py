"""CLI command groups over the admin API (and the importers), one module per group.

``lockgate/cli.py`` mounts them; ``client.py`` holds what they share.
"""

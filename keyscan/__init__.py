"""keyscan: find AWS access keys leaked in git repositories."""

__version__ = "0.1.0"

"""mestudio — real-time facial micro-expression spotting and recognition."""

__version__ = "0.1.0"

"""File plumbing shared by every layer: the download cache (and, beside it, job folders and atomic writes)."""

from .cache import DownloadError, default_cache_dir, download, offline_reason, resolve_cache_dir

__all__ = ["DownloadError", "default_cache_dir", "download", "offline_reason", "resolve_cache_dir"]

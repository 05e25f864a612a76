"""File plumbing for every layer: the download cache, job folders, atomic writes."""

from .cache import DownloadError, default_cache_dir, download, offline_reason, resolve_cache_dir

__all__ = ["DownloadError", "default_cache_dir", "download", "offline_reason", "resolve_cache_dir"]

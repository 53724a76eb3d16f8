"""Backup and restore of a whole installation: database and image store in one .tar file."""

from app.backup.archive import BackupError
from app.backup.service import BackupReport, RestoreReport, create_backup, restore_backup

__all__ = ["BackupError", "BackupReport", "RestoreReport", "create_backup", "restore_backup"]

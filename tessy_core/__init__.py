"""tessy: student-consistent SFT data by interleaving a teacher and a student inside each trace."""

__version__ = "0.1.0"

"""Lyrics of songs as people have them: plain text with ``[section]`` markers, aligned to a vocal stem."""

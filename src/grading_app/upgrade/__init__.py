"""Upgrading databases left by earlier releases: detect, back up, apply, verify, report."""

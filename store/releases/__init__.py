"""Governed dataset releases: requests, steward approval, the release table and lineage to training runs."""

"""Masters with a known defect, for showing each master oracle failing (tests/interop/test_master_catalog.py)."""

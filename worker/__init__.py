"""The reference Locust worker: conformant, one socket owner, deadline-driven."""

"""Reference relays the worker's CPU is compared against: raw (bytes in, bytes out) and naive (JSON both ways)."""

"""Lockgate's benchmark harness: upstreams, load, measurements and the report. Entry: bench/run.sh."""

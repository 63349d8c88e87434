"""The profile summary: which samples count as busy, and per function."""

from __future__ import annotations

from bench.hotspots import summarise

PIPELINE = "run (/x/sidecar/switchboard/sidecar/pipeline.py:40)"
LOOP = "_run_once (/usr/lib/python3.11/asyncio/base_events.py:1884)"
PACER = "Pacer.__call__ (/x/sidecar/switchboard/telemetry/otlp.py:160)"
EXPORT = "export (/x/sidecar/switchboard/telemetry/otlp.py:240)"
POOL = "_worker (concurrent/futures/thread.py:81)"
SYNC = "_sync (/x/sidecar/switchboard/ledger/outbox.py:97)"


def test_waiting_loops_threads_and_the_pacing_exporter_are_idle_and_work_is_busy() -> None:
    lines = [
        f"main (cli.py:1);{LOOP};{PIPELINE} 30",
        f"main (cli.py:1);{LOOP} 50",  # the loop waiting for events
        f"_bootstrap (threading.py:1);{EXPORT};{PACER} 40",  # sleeping between slices
        f"_bootstrap (threading.py:1);{EXPORT} 10",  # encoding
        f"_bootstrap (threading.py:1);{POOL} 70",  # a pool thread waiting for work
        f"_bootstrap (threading.py:1);{POOL};{SYNC} 5",  # the pool thread at work
    ]
    summary = summarise(lines)
    assert summary.samples == 45
    assert summary.own["_sync (ledger/outbox.py)"] == 5
    assert summary.own["run (sidecar/pipeline.py)"] == 30
    assert summary.own["export (telemetry/otlp.py)"] == 10
    assert "Pacer.__call__ (telemetry/otlp.py)" not in summary.inclusive

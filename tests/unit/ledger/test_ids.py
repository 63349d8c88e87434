from __future__ import annotations

import os
import re

from switchboard.ledger.ids import RecordIds


def test_ids_are_32_hex_characters_and_never_repeat_in_a_process() -> None:
    ids = RecordIds()
    drawn = [ids() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in drawn)
    assert len(set(drawn)) == len(drawn)


def test_two_processes_draw_different_prefixes() -> None:
    assert RecordIds()()[:16] != RecordIds()()[:16]


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    ids = RecordIds()
    ids()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same next id as the parent's would collide in the ledger
        os.write(write, ids().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert len(child_id) == 32
    assert child_id != ids()
    assert child_id[:16] != ids()[:16]

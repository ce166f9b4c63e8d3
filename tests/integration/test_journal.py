"""Logs to systemd's journal: when JOURNAL_STREAM names baa's stderr (as
systemd sets it for a unit whose output goes to the journal), every line
starts with its syslog priority (<6> info, <4> warn, <3> error, <7>
debug), which journald takes for the entry's level; otherwise the lines
are plain logfmt. The stream is named by device and inode, so a value
inherited by a process whose stderr goes elsewhere changes nothing.
"""

import re
import signal

from harness import Baa, BaaTestCase, make_temp_dir, wait_until

PRIORITY = {"debug": "7", "info": "6", "warn": "4", "error": "3"}


class JournalTest(BaaTestCase):
    workers = 1

    def lines(self, baa):
        with open(baa.logpath, encoding="utf-8", errors="replace") as f:
            return [line for line in f.read().splitlines() if line]

    def serve_and_stop(self, **kw):
        baa = Baa(make_temp_dir("baa-it-journal-"))
        self.addCleanup(baa.stop)
        baa.serve(self.env(), **kw)
        baa.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: baa.proc.poll() is not None, 15, message="baa serve did not stop")
        return self.lines(baa)

    def test_each_line_carries_its_level_as_a_syslog_priority(self):
        lines = self.serve_and_stop(journal=True)
        self.assertTrue(any("event=worker_started" in line for line in lines), lines)
        for line in lines:
            m = re.match(r"<(\d)>ts=\S+ level=(\w+) ", line)
            self.assertIsNotNone(m, "not a journal line: %r" % line)
            self.assertEqual(m.group(1), PRIORITY[m.group(2)], line)

    def test_a_stream_that_is_not_stderr_leaves_the_lines_plain(self):
        env = dict(self.env(), JOURNAL_STREAM="1:1")
        baa = Baa(make_temp_dir("baa-it-journal-"))
        self.addCleanup(baa.stop)
        baa.serve(env)
        baa.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: baa.proc.poll() is not None, 15, message="baa serve did not stop")
        lines = self.lines(baa)
        self.assertTrue(lines)
        for line in lines:
            self.assertTrue(line.startswith("ts="), line)

#!/usr/bin/env python3
"""The asyncio Protocol echo server of server_asyncio.py on uvloop's event
loop (python3-uvloop from Debian).

    server_uvloop.py PORT[,PORT...]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import uvloop  # noqa: E402  (an ImportError tells the runner to skip uvloop)

import server_asyncio  # noqa: E402

if __name__ == "__main__":
    server_asyncio.main(uvloop.new_event_loop)

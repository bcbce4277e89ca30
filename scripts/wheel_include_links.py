#!/usr/bin/env python3
"""Create the two include paths that the ROS 2 PyPI wheels' exported CMake targets name.

The wheels were built under /opt/python/cp311-cp311, and CMake refuses to configure a package that
uses them ("includes non-existent path") until those paths exist. Links to this interpreter's
include dir and NumPy's fix it; run once per machine with the Python of the environment holding
the wheels (scripts/bootstrap.sh does; so does the README's colcon workspace set-up).
"""
import os
import sys
import sysconfig

import numpy

LINKS = [
    ("/opt/python/cp311-cp311/include/python3.11", sysconfig.get_paths()["include"]),
    ("/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include", numpy.get_include()),
]


def main() -> int:
    for link, target in LINKS:
        if os.path.exists(link):
            continue
        try:
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(target, link)
        except OSError as exc:
            print(f"[bootstrap] cannot create {link} -> {target} ({exc}); create it once as root.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

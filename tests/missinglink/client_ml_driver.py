"""Run inside the MissingLink client's virtualenv: several ``ml`` command lines in one process.

argv[1] is a JSON list of argument lists; each runs as ``ml ARGS...`` would (the console
script's ``main()``), with file descriptors 1 and 2 sent to files of its own so everything it
prints is captured, the client's loggers included. The JSON list of their exit codes, stdout
and stderr is the last line of stdout. One process start instead of one per command: the
client takes seconds to import.
"""

import json
import os
import sys
import tempfile
import traceback

from missinglink_cli import main

RESULTS_MARK = "MISSINGLINK-RESULTS "


def exit_code(exc: SystemExit) -> int:
    """The status the interpreter would exit with (a message is printed, as it would be)."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def run(argv: list[str]) -> dict:
    sys.argv = ["ml", *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exit_code(exc)
        except Exception:  # what the interpreter does with it
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        err.seek(0)
        return {
            "returncode": code,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


results = [run(argv) for argv in json.loads(sys.argv[1])]
sys.stdout.write("\n" + RESULTS_MARK + json.dumps(results) + "\n")

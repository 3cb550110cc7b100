"""Run inside the MissingLink client's virtualenv: ``as_api()`` calls in, JSON results out.

argv[1] is ``{"config": PATH, "calls": [[method, kwargs], ...]}``; each call's result (a
generator read to the end) or its exception goes into the JSON list on the last stdout line.
"""

import json
import sys
import types

from missinglink.commands.as_api import as_api

RESULTS_MARK = "MISSINGLINK-RESULTS "


def main() -> None:
    spec = json.loads(sys.argv[1])
    api = as_api(config_file=spec["config"])
    results = []
    for method, kwargs in spec["calls"]:
        try:
            result = getattr(api.experiments, method)(**kwargs)
            if isinstance(result, types.GeneratorType):
                result = list(result)
            results.append({"result": result})
        except Exception as exc:  # the test asserts on it
            results.append({"error": type(exc).__name__, "message": str(exc)})
    sys.stdout.write("\n" + RESULTS_MARK + json.dumps(results) + "\n")


main()

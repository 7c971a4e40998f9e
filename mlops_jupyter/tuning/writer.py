"""The process that writes a laptop's study: ``python -m mlops_jupyter.tuning.writer URL STUDY FIRST``
reads finished trials (pickled Optuna ``FrozenTrial`` objects, from the search that started it)
on its standard input until it closes, adds them to the stored study in the order of their
numbers from FIRST, and prints the ones it could not write as a JSON list (see ``TrialWriter``)."""

from __future__ import annotations

import json
import pickle
import sys


def main(argv: list[str]) -> int:
    url, study_name, first = argv[0], argv[1], int(argv[2])
    failed: list[str] = []
    try:
        import optuna

        from .study import rdb_storage

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.load_study(study_name=study_name, storage=rdb_storage(url))
        waiting: dict[int, object] = {}
        following = first

        def write(frozen) -> None:
            try:
                study.add_trial(frozen)
            except Exception as e:  # reported once, by the search; the others are still written
                failed.append(f"trial {frozen.number}: {type(e).__name__}: {e}"[:300])

        while True:
            try:
                frozen = pickle.load(sys.stdin.buffer)
            except EOFError:
                break
            waiting[frozen.number] = frozen
            while following in waiting:
                write(waiting.pop(following))
                following += 1
        for number in sorted(waiting):  # the last ones, whatever came before them
            write(waiting.pop(number))
    except Exception as e:
        failed.append(f"{type(e).__name__}: {e}"[:300])
    print(json.dumps(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

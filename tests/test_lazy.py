"""keyscan/lazy.py: what is imported or compiled when first used behaves as the real
thing, including when sent to a worker process (pickled)."""

from __future__ import annotations

import copy
import pickle
import re
import subprocess
import sys
from pathlib import Path

from keyscan.lazy import LazyModule, lazy_pattern


def test_a_lazy_pattern_matches_as_the_compiled_one_and_travels() -> None:
    lazy = lazy_pattern(rb"(?P<value>AKIA[A-Z2-7]{4})", re.IGNORECASE)
    real = re.compile(rb"(?P<value>AKIA[A-Z2-7]{4})", re.IGNORECASE)
    text = b"x akiaabcd AKIA2345 "
    assert lazy.pattern == real.pattern
    for twin in (lazy, pickle.loads(pickle.dumps(lazy)), copy.deepcopy(lazy)):
        assert [m["value"] for m in twin.finditer(text)] == \
            [m["value"] for m in real.finditer(text)]


def test_a_lazy_module_is_imported_when_first_used() -> None:
    code = ("import sys; from keyscan.lazy import LazyModule; m = LazyModule('colorsys'); "
            "before = 'colorsys' in sys.modules; m.rgb_to_hsv(0.1, 0.2, 0.3); "
            "print(before, 'colorsys' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True"]
    assert LazyModule("json").dumps([1]) == "[1]"


def test_the_hook_and_rescans_import_neither_gitpython_nor_boto3_nor_dask(tmp_path: Path
                                                                         ) -> None:
    """The hook, a file scan and a history re-scan start without the heavy libraries:
    gitpython (~65 ms to import) opens the repository of a first history scan (refs,
    HEAD, commit metadata), where its cost is a small part of the scan, boto3 serves the
    AWS commands, Dask the audit; the archive readers wait for an archive."""
    from repos import commit_all, git

    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    commit_all(tmp_path)
    heavy = "('git', 'boto3', 'dask', 'keyscan.unpack', 'zipfile')"
    runs = [(["--staged"], []), ([], []), (["--history"], ["git"]), (["--history"], [])]
    for i, (args, imported) in enumerate(runs):
        if i == 3:  # a commit since the first history scan: a re-scan from the files
            (tmp_path / "b.txt").write_text("b\n")
            commit_all(tmp_path)
        code = ("import sys; from keyscan.cli import main; "
                f"main(['scan', *{args!r}, {str(tmp_path)!r}]); "
                f"print(sorted(m for m in {heavy} if m in sys.modules), file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        assert proc.stderr.strip().splitlines()[-1] == str(imported), (args, proc.stderr)


def test_small_scans_and_rescans_import_no_typing_nor_the_pack_reader(tmp_path: Path
                                                                     ) -> None:
    """The hook, a scan of a few files and a history re-scan pay neither `typing` (~2.5 ms:
    the stdin support imported it at the top of scan.py) nor the parallel pack reader
    with dulwich and process pools (~40 ms: every scan of files imported it to ask how
    many CPUs there are, even for three files)."""
    from repos import commit_all, git

    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    commit_all(tmp_path)
    main = "from keyscan.cli import main; "
    subprocess.run([sys.executable, "-c", main + f"main(['scan', '--history', {str(tmp_path)!r}])"],
                   capture_output=True, check=True)  # the cache a re-scan starts from
    (tmp_path / "b.txt").write_text("b\n")
    commit_all(tmp_path)
    for args in (["--staged"], [], ["--history"]):
        code = ("import sys; " + main + f"main(['scan', *{args!r}, {str(tmp_path)!r}]); "
                "print(sorted(m for m in ('typing', 'dulwich', 'keyscan.sources.parallel') "
                "if m in sys.modules), file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        assert proc.stderr.strip().splitlines()[-1] == "[]", (args, proc.stderr)

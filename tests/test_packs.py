"""Full-history scans that rebuild packed objects in-process (keyscan/sources/packs.py).

Every rebuilt object is checked against its own id (git's SHA-1 of type, size and
content), and every scan against the same scan read through `git cat-file`.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
from dulwich._pack import create_delta
from fakes import fake_key_id, fake_secret
from hypothesis import given, settings
from hypothesis import strategies as st
from repos import git
from test_history import Cli, by_key, commit, history, pair_text

from keyscan.sources import packs


def edited_many_times(repo: Path, versions: int, plant_at: int, key: str, secret: str
                      ) -> dict[str, str]:
    """A 60 KB file edited in small steps, so a repack stores most versions as deltas;
    the key pair lives only in version `plant_at`, then is removed."""
    rng = random.Random(7)
    lines = [f"line {i}: " + "".join(rng.choice("abcdefgh ") for _ in range(60)) + "\n"
             for i in range(900)]
    shas = {}
    for v in range(versions):
        lines[rng.randrange(len(lines))] = f"edited in version {v}\n"
        body = list(lines)
        if v == plant_at:
            body.insert(450, pair_text(key, secret))
        shas[f"v{v}"] = commit(repo, {"big/model.json": "".join(body)}, f"version {v}",
                               "Mallory" if v == plant_at else "Alice")
    return shas


def repack(repo: Path, *extra: str) -> None:
    git(repo, "repack", "-a", "-d", "-f", "-q", "--window=50", "--depth=50", *extra)
    git(repo, "prune")


def object_id(kind: str, content: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(content)}\0".encode() + content).hexdigest()


def pack_of(repo: Path) -> Path:
    (idx,) = packs.pack_indexes(repo / ".git" / "objects")
    return idx


def rebuilt(idx: Path) -> tuple[packs.PackPlan, dict[str, bytes], list[int]]:
    plan = packs.plan_pack(idx)
    assert plan is not None
    out: dict[str, bytes] = {}
    failed: list[int] = []
    packs.walk(plan, plan.roots,
               lambda p, data: out.__setitem__(plan.sha(p).hex(), data), failed.append)
    return plan, out, failed


def deltas_in(idx: Path) -> int:
    """Entries git itself reports as deltas (verify-pack's chain column)."""
    out = subprocess.run(["git", "verify-pack", "-v", str(idx)], capture_output=True,
                         text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if len(line.split()) == 7)


@pytest.mark.parametrize("offset_deltas", [True, False], ids=["ofs-delta", "ref-delta"])
def test_every_packed_object_is_rebuilt_exactly(repo: Path, offset_deltas: bool) -> None:
    edited_many_times(repo, 30, 12, fake_key_id(), fake_secret())
    if offset_deltas:
        repack(repo)
    else:  # an older pack format: deltas name their base by id
        git(repo, "-c", "repack.useDeltaBaseOffset=false", "repack", "-a", "-d", "-f", "-q",
            "--window=50", "--depth=50")
    idx = pack_of(repo)
    assert deltas_in(idx) >= 20  # the test means something only with delta chains
    plan, objects, failed = rebuilt(idx)
    assert failed == [] and plan.broken == []
    kinds = {p: packs.KINDS[plan.kind[p]] for p in range(len(plan)) if plan.kind[p] in packs.KINDS}
    assert len(objects) == len(kinds)  # every blob, commit and tag, once; trees never
    for p, kind in kinds.items():
        sha = plan.sha(p).hex()
        assert object_id(kind, objects[sha]) == sha


def test_packed_and_git_read_scans_report_the_same(cli: Cli, repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    key, secret = fake_key_id(), fake_secret()
    shas = edited_many_times(repo, 25, 9, key, secret)
    later = fake_key_id()
    repack(repo)
    # a loose object next to the pack: read through git
    shas["loose"] = commit(repo, {"later.txt": f"id {later}\n"}, "later", "Bob")
    code, findings, doc = history(cli, repo, "--no-cache")
    monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    code_git, findings_git, doc_git = history(cli, repo, "--no-cache")
    assert code == code_git == 1
    assert findings == findings_git
    assert doc["summary"]["files"] == doc_git["summary"]["files"]
    assert doc["summary"]["bytes"] == doc_git["summary"]["bytes"]
    pair = by_key(findings, key)
    assert pair["kind"] == "pair" and pair["commit"]["sha"] == shas["v9"]
    assert pair["commit"]["author_name"] == "Mallory"
    assert pair["path"] == "big/model.json" and pair["line"] == 452  # "[default]" at 451
    assert pair["in_head"] is False
    assert by_key(findings, later)["commit"]["sha"] == shas["loose"]


def test_a_corrupt_pack_entry_and_its_deltas_are_reported_and_the_scan_goes_on(
        cli: Cli, repo: Path) -> None:
    kept, lost = fake_key_id(), fake_key_id()
    commit(repo, {"kept.txt": f"id {kept}\n"}, "kept")
    edited_many_times(repo, 12, 11, lost, fake_secret())
    repack(repo)
    idx = pack_of(repo)
    plan = packs.plan_pack(idx)
    assert plan is not None
    blob = git(repo, "rev-parse", "HEAD~3:big/model.json").stdout.strip()
    p = plan.position(bytes.fromhex(blob))
    pack = idx.with_suffix(".pack")
    data = bytearray(pack.read_bytes())
    middle = (plan.start[p] + plan.end[p]) // 2
    data[middle : middle + 8] = b"\xff" * 8  # the entry no longer inflates
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    descendants: list[int] = []
    packs._fail_tree(plan, p, descendants.append)
    result = cli("scan", "--history", repo, "--format", "json", "--no-cache")
    doc = result.json
    assert by_key(doc["findings"], kept)
    skipped = " ".join(s["path"] for s in doc["skipped"])
    assert blob in skipped
    # every object built on the damaged one was handed to git, which could not read it
    assert all(plan.sha(q).hex() in skipped for q in descendants)
    assert result.code == 1


def test_duplicate_objects_in_two_packs_are_read_once(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    git(repo, "repack", "-q")  # pack 1
    commit(repo, {"b.txt": "more\n"}, "b")
    git(repo, "repack", "-q", "-a")  # pack 2 holds everything again; pack 1 is kept
    assert len(packs.pack_indexes(repo / ".git" / "objects")) == 2
    _, findings, doc = history(cli, repo, "--no-cache")
    assert by_key(findings, key)["count"] == 1
    objects = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objecttype)").stdout
    assert doc["summary"]["files"] == sum(1 for t in objects.split() if t != "tree")


def test_an_over_size_packed_blob_is_reported_not_read(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit(repo, {"big.txt": "x" * 5000 + f"\nid {key}\n"}, "big")
    repack(repo)
    _, findings, doc = history(cli, repo, "--no-cache", "--max-file-size", "1000")
    assert findings == []
    assert any("larger than the size limit" in s["reason"] for s in doc["skipped"])


def test_an_over_size_version_in_a_delta_chain_is_never_rebuilt(cli: Cli, repo: Path) -> None:
    """A file that grows past the limit and shrinks again: the big version is reported
    from its size and never held in memory; the versions around it are read."""
    small_key, big_key, after_key = fake_key_id(), fake_key_id(), fake_key_id()
    lines = "".join(f"setting_{i} = {i * 7}\n" for i in range(40))
    commit(repo, {"conf.py": lines + f"KEY = '{small_key}'\n"}, "small")
    big = lines + f"KEY = '{big_key}'\n" + "".join(f"extra_{i} = {i}\n" for i in range(400))
    commit(repo, {"conf.py": big}, "big")
    commit(repo, {"conf.py": lines + f"KEY = '{after_key}'\n"}, "small again")
    repack(repo)
    big_blob = git(repo, "rev-parse", "HEAD~1:conf.py").stdout.strip()
    plan = packs.plan_pack(pack_of(repo))
    assert plan is not None
    assert any(plan.base[p] != -1 for p in range(len(plan)) if plan.kind[p] == packs.BLOB)
    rebuilt: list[str] = []
    failed: list[int] = []
    packs.walk(plan, plan.roots, lambda p, _: rebuilt.append(plan.sha(p).hex()),
               failed.append, max_size=2000)
    assert big_blob not in rebuilt and big_blob in {plan.sha(p).hex() for p in failed}
    _, findings, doc = history(cli, repo, "--no-cache", "--max-file-size", "2000")
    assert {f["key_id"] for f in findings} == {small_key, after_key}
    assert any(big_blob in s["path"] and "larger than the size limit" in s["reason"]
               for s in doc["skipped"])


def test_a_linked_worktree_reads_the_main_repository_packs(cli: Cli, repo: Path,
                                                           tmp_path: Path) -> None:
    key = fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    repack(repo)
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"))
    _, findings, _ = history(cli, tmp_path / "wt", "--no-cache")
    assert by_key(findings, key)


# -- the pure-Python delta applier (used when dulwich's compiled one is absent) ----------

@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.binary(min_size=0, max_size=3000),
       st.integers(min_value=0, max_value=3000))
def test_python_delta_applier_agrees_with_git_format(base: bytes, insert: bytes, cut: int
                                                     ) -> None:
    target = base[:cut] + insert + base[cut:][::-1]
    assert packs.apply_delta_py(base, _delta(base, target)) == target


def test_a_delta_that_does_not_fit_its_base_is_refused() -> None:
    base, target = b"a" * 100, b"a" * 50 + b"b" * 50
    delta = _delta(base, target)
    with pytest.raises(packs.PackError):
        packs.apply_delta_py(base[:99], delta)
    with pytest.raises(packs.PackError):
        packs.apply_delta_py(base, delta[:-3])


def _delta(base: bytes, target: bytes) -> bytes:
    made = create_delta(base, target)
    return made if isinstance(made, bytes) else b"".join(made)


def test_python_delta_applier_rebuilds_git_s_own_deltas(repo: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    edited_many_times(repo, 20, 5, fake_key_id(), fake_secret())
    repack(repo)
    monkeypatch.setattr(packs, "_apply_delta_c", None)
    plan, objects, failed = rebuilt(pack_of(repo))
    assert failed == [] and objects
    for p in range(len(plan)):
        if plan.kind[p] in packs.KINDS:
            sha = plan.sha(p).hex()
            assert object_id(packs.KINDS[plan.kind[p]], objects[sha]) == sha


@pytest.mark.parametrize("offset_deltas", [True, False], ids=["ofs-delta", "ref-delta"])
def test_headers_parsed_in_two_processes_give_the_same_plan(
        repo: Path, monkeypatch: pytest.MonkeyPatch, offset_deltas: bool) -> None:
    edited_many_times(repo, 30, 12, fake_key_id(), fake_secret())
    config = [] if offset_deltas else ["-c", "repack.useDeltaBaseOffset=false"]
    git(repo, *config, "repack", "-a", "-d", "-f", "-q", "--window=50", "--depth=50")
    idx = pack_of(repo)
    whole = packs.plan_pack(idx)
    monkeypatch.setattr(packs, "_SPLIT_ENTRIES", 2)  # a forked helper parses half
    joined: list[object] = []
    real_join = packs._join

    def join(helper: tuple[int, int] | None) -> object:
        joined.append(real_join(helper))
        return joined[-1]

    monkeypatch.setattr(packs, "_join", join)
    split = packs.plan_pack(idx)
    assert whole is not None and split is not None
    assert len(joined) == 1 and isinstance(joined[0], packs._Headers)  # not a fallback
    for field in ("kind", "start", "end", "base", "first", "next", "size", "weight", "roots",
                  "broken"):
        assert getattr(split, field) == getattr(whole, field), field
    # chains crossing the halves: deltas in the second half built on the first
    half = len(whole) // 2
    assert any(whole.base[p] != -1 and whole.base[p] < half for p in range(half, len(whole)))


_PLAN_FIELDS = ("order", "kind", "start", "end", "base", "first", "next", "size", "weight",
                "roots", "emit", "broken")


@pytest.mark.parametrize("damage", ["none", "ref-delta", "bad-type", "bad-offset", "tail"])
def test_the_numpy_planner_makes_the_python_planner_s_plan(
        repo: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    """Big packs are planned with numpy: field for field the Python plan, damaged entry
    headers included (an unknown type, an offset delta pointing nowhere, the last
    entries, which the columns cannot hold, parsed by Python)."""
    edited_many_times(repo, 30, 12, fake_key_id(), fake_secret())
    for i in range(40):  # small files too: whole objects of every kind
        commit(repo, {f"notes/n{i}.txt": f"note {i}\n" * (i + 1)}, f"note {i}")
    config = ["-c", "repack.useDeltaBaseOffset=false"] if damage == "ref-delta" else []
    git(repo, *config, "repack", "-a", "-d", "-f", "-q", "--window=50", "--depth=50")
    idx = pack_of(repo)
    monkeypatch.setattr(packs, "NUMPY_ENTRIES", 1 << 40)
    plan = packs.plan_pack(idx)
    assert plan is not None
    if damage in ("bad-type", "bad-offset"):
        pack = idx.with_suffix(".pack")
        data = bytearray(pack.read_bytes())
        whole = next(p for p in range(len(plan)) if plan.base[p] == -1 and plan.first[p] != -1)
        delta = plan.first[whole]
        header = packs.read_index(idx)[1][plan.order[delta if damage == "bad-offset" else whole]]
        if damage == "bad-type":
            data[header] = (data[header] & 0x8F) | (5 << 4)  # type 5 does not exist
        else:
            at = header + 1
            while data[at - 1] & 0x80:  # past the size varint: the offset's first byte
                at += 1
            data[at] = 0  # points back 0 bytes: at itself
        pack.chmod(0o644)
        pack.write_bytes(bytes(data))
    monkeypatch.setattr(packs, "_SPLIT_ENTRIES", 1 << 40)
    python = packs.plan_pack(idx)
    monkeypatch.setattr(packs, "NUMPY_ENTRIES", 0)
    if damage == "tail":
        from keyscan.sources import packs_np

        monkeypatch.setattr(packs_np, "_COLUMNS", 400)  # many entries left to Python
    vectorized = packs.plan_pack(idx)
    assert python is not None and vectorized is not None
    for field in _PLAN_FIELDS:
        assert getattr(vectorized, field) == getattr(python, field), field
    if damage in ("bad-type", "bad-offset"):
        assert python.broken  # the damaged entry and what is built on it
    if damage == "ref-delta":  # deltas naming their base by id, linked after parsing
        offsets = packs.read_index(idx)[1]
        data = idx.with_suffix(".pack").read_bytes()
        assert sum((data[offsets[i]] >> 4) & 7 == 7 for i in range(len(offsets))) > 10


@pytest.mark.parametrize("numpy_groups", [False, True])
def test_many_packs_planned_in_two_processes_give_the_same_plans(
        cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch, numpy_groups: bool) -> None:
    """A clone fetched into many times holds many packs: a forked helper plans about
    half of them; a group of many entries in all is planned by numpy, in a helper of
    its own (here with the threshold lowered). The plans and the report are the same
    as planned one by one in Python."""
    key, secret = fake_key_id(), fake_secret()
    for round_ in range(5):  # five packs of different sizes, the key in the third
        edited_many_times(repo, 3 + 2 * round_, 1 if round_ == 2 else 99, key, secret)
        git(repo, "repack", "-q", "-d")  # a new pack of what is loose
    indexes = packs.pack_indexes(repo / ".git" / "objects")
    assert len(indexes) == 5
    alone = [packs.plan_pack(idx) for idx in indexes]
    _, findings, doc = history(cli, repo, "--no-cache")

    monkeypatch.setattr(packs, "_SPLIT_ENTRIES", 2)  # helpers for the packs and inside them
    joined: list[object] = []
    real_join = packs._join

    def join(helper: tuple[int, int] | None) -> object:
        got = real_join(helper)
        joined.append(list(got) if isinstance(got, list) else got)  # a copy: it is consumed
        return got

    monkeypatch.setattr(packs, "_join", join)
    if numpy_groups:
        monkeypatch.setattr(packs, "NUMPY_ENTRIES", 10)
    together = packs.plan_packs(indexes)
    helped = [j for j in joined if isinstance(j, list)]
    if numpy_groups:  # both groups, each in a helper
        assert len(helped) == 2 and sum(map(len, helped)) == len(indexes)
    else:
        assert len(helped) == 1  # the helper planned some packs: as many as it was given
        assert 0 < len(helped[0]) < len(indexes)
    assert all(isinstance(p, packs.PackPlan) for p in helped[0])
    for one, other in zip(alone, together, strict=True):
        assert isinstance(one, packs.PackPlan) and isinstance(other, packs.PackPlan)
        assert other.path == one.path
        for field in ("kind", "start", "end", "base", "size", "weight", "roots", "broken"):
            assert getattr(other, field) == getattr(one, field), field
    _, findings_split, doc_split = history(cli, repo, "--no-cache")
    assert findings_split == findings and by_key(findings, key)["kind"] == "pair"
    assert doc_split["summary"]["files"] == doc["summary"]["files"]


# -- stores the pack reader leaves to git --------------------------------------------------

def _findings_both_ways(cli: Cli, repo: Path, monkeypatch: pytest.MonkeyPatch
                        ) -> list[dict[str, object]]:
    _, findings, _ = history(cli, repo, "--no-cache")
    monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    _, through_git, _ = history(cli, repo, "--no-cache")
    monkeypatch.delenv("KEYSCAN_READ_PACKS")
    assert findings == through_git
    return findings


def test_a_version_1_pack_index_is_read_through_git(cli: Cli, repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    key = fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    repack(repo)
    idx = pack_of(repo)
    idx.chmod(0o644)
    idx.unlink()
    git(repo, "index-pack", "--index-version=1", "-o", str(idx), str(idx.with_suffix(".pack")))
    assert packs.read_index(idx) is None  # not a format the reader takes
    assert [f["key_id"] for f in _findings_both_ways(cli, repo, monkeypatch)] == [key]


def test_a_clone_sharing_its_objects_through_alternates(cli: Cli, repo: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    key, later = fake_key_id(), fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    repack(repo)
    shared = tmp_path / "shared"
    git(tmp_path, "clone", "-q", "--shared", str(repo), str(shared))
    assert (shared / ".git" / "objects" / "info" / "alternates").exists()
    commit(shared, {"b.txt": f"id {later}\n"}, "b")
    found = _findings_both_ways(cli, shared, monkeypatch)
    assert {f["key_id"] for f in found} == {key, later}


def test_a_sha256_repository_is_read_through_git(cli: Cli, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "sha256"
    repo.mkdir()
    if subprocess.run(["git", "init", "-q", "--object-format=sha256", str(repo)],
                      capture_output=True).returncode != 0:
        pytest.skip("this git cannot make SHA-256 repositories")
    key = fake_key_id()
    sha = commit(repo, {"a.txt": f"id {key}\n"}, "a")
    repack(repo)
    assert [f["key_id"] for f in _findings_both_ways(cli, repo, monkeypatch)] == [key]
    for _ in range(2):  # no cache for SHA-256 ids: each scan reads it all, and says so
        _, findings, doc = history(cli, repo)
        assert [(f["key_id"], f["commit"]["sha"]) for f in findings] == [(key, sha)]
        assert len(sha) == 64 and any("SHA-256" in n for n in doc["notes"])


def test_a_partial_clone_reports_each_missing_blob_and_reads_the_rest(
        cli: Cli, repo: Path, tmp_path: Path) -> None:
    """A blob:limit partial clone whose remote is gone: the big blobs it lacks are each
    reported by id, everything it has is read (from its promisor pack)."""
    small_key, big_key = fake_key_id(), fake_key_id()
    commit(repo, {"small.txt": f"id {small_key}\n"}, "small")
    commit(repo, {"big.txt": f"id {big_key}\n" + "padding line\n" * 400}, "big")
    big_blob = git(repo, "rev-parse", "HEAD:big.txt").stdout.strip()
    git(repo, "config", "uploadpack.allowFilter", "true")
    clone = tmp_path / "partial"
    git(tmp_path, "clone", "-q", "--no-checkout", "--filter=blob:limit=1k",
        f"file://{repo}", str(clone))
    assert list((clone / ".git" / "objects" / "pack").glob("*.promisor"))
    repo.rename(tmp_path / "gone")  # no lazy fetch can bring the big blob back
    result = cli("scan", "--history", clone, "--format", "json", "--no-cache")
    doc = result.json
    assert [f["key_id"] for f in doc["findings"]] == [small_key]
    assert any(big_blob in s["path"] and "missing" in s["reason"] for s in doc["skipped"])
    assert result.code == 1


def test_a_partial_clone_is_scanned_without_fetching_from_its_remote(
        cli: Cli, repo: Path, tmp_path: Path) -> None:
    """The remote is there: a whole-history scan still fetches nothing (all the blobs a
    clone left out; git's attribution pass would fetch those it looks for), says what it
    could not scan, and two scans agree. (A range fetches the few it added: below.)"""
    head_key, old_key = fake_key_id(), fake_key_id()
    commit(repo, {"old.ini": f"id {old_key}\n"}, "old")
    commit(repo, {"old.ini": None, "head.ini": f"id {head_key}\n"}, "head")
    git(repo, "config", "uploadpack.allowFilter", "true")
    clone = tmp_path / "partial"
    git(tmp_path, "clone", "-q", "--filter=blob:none", f"file://{repo}", str(clone))
    packs_before = sorted(p.name for p in (clone / ".git" / "objects" / "pack").iterdir())
    runs = [cli("scan", "--history", clone, "--format", "json", *extra)
            for extra in ([], ["--no-cache"], [])]
    assert sorted(p.name for p in (clone / ".git" / "objects" / "pack").iterdir()) == \
        packs_before
    for result in runs:
        assert [f["key_id"] for f in result.json["findings"]] == [head_key]
        assert any("partial clone" in note for note in result.json["notes"])
        assert any("missing" in s["reason"] for s in result.json["skipped"])


def blobless_clone_of_a_leak(repo: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """A CI job's checkout: a blobless clone of a repository whose last commit (the pull
    request) adds a key. Returns the clone, the key and the blob holding it."""
    commit(repo, {"README": "readme\n"}, "base")
    key = fake_key_id()
    commit(repo, {"deploy/prod.env": pair_text(key, fake_secret())}, "pull request")
    blob = git(repo, "rev-parse", "HEAD:deploy/prod.env").stdout.strip()
    git(repo, "config", "uploadpack.allowFilter", "true")
    git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "--no-checkout", "--filter=blob:none", f"file://{repo}",
        str(clone))
    return clone, key, blob


def has_object(repo: Path, sha: str) -> bool:
    """Whether the clone holds `sha`: from git's list of what it stores (asking for the
    object itself would make git fetch it)."""
    listed = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return sha in listed.stdout.split()


def test_a_range_in_a_blobless_clone_fetches_the_blobs_it_added(
        cli: Cli, repo: Path, tmp_path: Path) -> None:
    """The range a CI step scans is in a clone that holds none of its blobs: they are
    fetched in one request (not the rest of the history) and the key is found."""
    clone, key, blob = blobless_clone_of_a_leak(repo, tmp_path)
    readme = git(repo, "rev-parse", "HEAD:README").stdout.strip()
    assert not has_object(clone, blob)
    result = cli("scan", "--range", "HEAD~1..HEAD", clone, "--format", "json")
    assert result.code == 1, result.err
    assert [f["key_id"] for f in result.json["findings"]] == [key]
    assert any("fetched the 1 object" in n for n in result.json["notes"])
    assert has_object(clone, blob) and not has_object(clone, readme)


@pytest.mark.parametrize("why", ["remote gone", "GIT_NO_LAZY_FETCH"])
def test_a_range_whose_blobs_cannot_be_fetched_fails_closed(
        cli: Cli, repo: Path, tmp_path: Path, why: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Unscanned is not clean: the step fails (exit 2) and says what to do, instead of
    passing a pull request whose files were never read."""
    clone, _, blob = blobless_clone_of_a_leak(repo, tmp_path)
    if why == "remote gone":
        repo.rename(tmp_path / "gone")
    else:
        monkeypatch.setenv("GIT_NO_LAZY_FETCH", "1")
    result = cli("scan", "--since-commit", "HEAD~1", clone, "--format", "json")
    assert result.code == 2
    assert "the range is not cleared" in result.err and blob[:12] in result.err
    assert any(blob in s["path"] and "missing" in s["reason"] for s in result.json["skipped"])
    assert any(("GIT_NO_LAZY_FETCH" if why != "remote gone" else "fetching from origin "
                "failed") in n for n in result.json["notes"])
    assert not has_object(clone, blob)


def test_a_failed_fetch_names_no_credentials_of_the_remote(
        cli: Cli, repo: Path, tmp_path: Path) -> None:
    clone, _, _ = blobless_clone_of_a_leak(repo, tmp_path)
    # a closed port on the loopback address: the fetch fails at once, and git's message
    # quotes the URL
    git(clone, "remote", "set-url", "origin", "http://ci-bot:s3cr3t-t0ken@127.0.0.1:9/r.git")
    result = cli("scan", "--range", "HEAD~1..HEAD", clone)
    assert result.code == 2
    assert "fetching from origin failed" in result.err
    assert "s3cr3t-t0ken" not in result.out + result.err


def test_a_range_fails_closed_on_a_blob_over_the_size_limit_only(
        cli: Cli, repo: Path) -> None:
    commit(repo, {"README": "readme\n"}, "base")
    commit(repo, {"notes.txt": "nothing secret\n"}, "clean change")
    assert cli("scan", "--range", "HEAD~1..HEAD", repo).code == 0
    commit(repo, {"data.csv": "x,y\n" * 1000}, "big change")
    result = cli("scan", "--range", "HEAD~1..HEAD", repo, "--max-file-size", "1k")
    assert result.code == 2 and "raise --max-file-size" in result.err
    assert cli("scan", "--range", "HEAD~1..HEAD", repo).code == 0


def test_a_pack_gone_after_planning_hands_its_objects_to_git(repo: Path) -> None:
    """A `git gc` between planning and reading removes the pack: nothing is lost, every
    object is handed to git instead."""
    edited_many_times(repo, 10, 3, fake_key_id(), fake_secret())
    repack(repo)
    idx = pack_of(repo)
    plan = packs.plan_pack(idx)
    assert plan is not None
    idx.with_suffix(".pack").rename(idx.with_suffix(".moved"))
    failed: list[int] = []
    packs.walk(plan, plan.roots, lambda p, data: None, failed.append)
    assert set(plan.roots) <= set(failed)
    assert len(failed) == sum(1 for p in range(len(plan)) if plan.kind[p] in packs.KINDS)


def pack_of_first(folder: Path) -> Path:
    return next(p for p in sorted(folder.glob("pack-*.idx")) if "0" * 40 not in p.name)


def test_an_emptied_pack_beside_a_good_one_loses_nothing(cli: Cli, repo: Path) -> None:
    key = fake_key_id()
    commit(repo, {"a.txt": f"id {key}\n"}, "a")
    repack(repo)
    objects = repo / ".git" / "objects" / "pack"
    # a sound index beside an emptied pack: the reader cannot map it; what it lists is
    # read from the good pack, or reported by git if no pack has it
    (objects / ("pack-" + "0" * 40 + ".pack")).write_bytes(b"")
    (objects / ("pack-" + "0" * 40 + ".idx")).write_bytes(pack_of_first(objects).read_bytes())
    with pytest.raises(ValueError):
        packs.plan_pack(objects / ("pack-" + "0" * 40 + ".idx"))
    _, findings, _ = history(cli, repo, "--no-cache")
    assert [f["key_id"] for f in findings] == [key]


@pytest.mark.parametrize("reader", ["packs", "git"])
def test_an_emptied_pack_holding_the_only_copies_is_reported_object_by_object(
        cli: Cli, repo: Path, reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if reader == "git":  # git cannot list a store with a damaged pack: listed from indexes
        monkeypatch.setenv("KEYSCAN_READ_PACKS", "0")
    kept, lost = fake_key_id(), fake_key_id()
    commit(repo, {"kept.txt": f"id {kept}\n"}, "kept")
    git(repo, "repack", "-q", "-a", "-d")
    commit(repo, {"lost.txt": f"id {lost}\n"}, "lost")
    lost_blob = git(repo, "rev-parse", "HEAD:lost.txt").stdout.strip()
    git(repo, "repack", "-q", "-d")  # a second pack, only the new commit's objects
    folder = repo / ".git" / "objects" / "pack"

    def ids_of(idx: Path) -> set[bytes]:
        index = packs.read_index(idx)
        return set(index[0]) if index is not None else set()

    second = next(i for i in folder.glob("*.idx") if bytes.fromhex(lost_blob) in ids_of(i))
    second.with_suffix(".pack").chmod(0o644)
    second.with_suffix(".pack").write_bytes(b"")
    result = cli("scan", "--history", repo, "--format", "json", "--no-cache")
    doc = result.json
    assert kept in {f["key_id"] for f in doc["findings"]}
    assert any(lost_blob in s["path"] and "missing" in s["reason"] for s in doc["skipped"])
    if reader == "git":
        assert any("listed from the pack indexes" in n for n in doc["notes"])
    assert "Traceback" not in result.err


def test_an_index_of_a_pack_over_2_gb_gives_8_byte_offsets(tmp_path: Path) -> None:
    """Version-2 indexes keep offsets past 2 GB in a table of 8-byte values."""
    import struct

    ids = [bytes([1] * 20), bytes([2] * 20)]
    fanout = b"".join(struct.pack(">I", sum(1 for i in ids if i[0] <= b)) for b in range(256))
    idx = tmp_path / "pack-x.idx"
    idx.write_bytes(b"\xfftOc\x00\x00\x00\x02" + fanout + b"".join(ids) + b"\0" * 8
                    + struct.pack(">II", 12, 0x80000000) + struct.pack(">Q", 5_000_000_000)
                    + b"\0" * 40)
    index = packs.read_index(idx)
    assert index is not None
    shas, offsets = index
    assert list(shas) == ids
    assert list(offsets) == [12, 5_000_000_000]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1 << 40), st.integers(0, 1 << 40), st.binary(max_size=8))
def test_a_delta_s_target_size_is_its_header_s_second_number(source: int, target: int,
                                                            rest: bytes) -> None:
    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            value, low = value >> 7, value & 0x7F
            out.append(low | (0x80 if value else 0))
            if not value:
                return bytes(out)

    delta = varint(source) + varint(target) + rest
    assert packs._target_size(delta) == target
    with pytest.raises(packs.PackError):
        packs._target_size(varint(source) + varint(target)[:-1])  # cut short


def test_a_fetched_thin_pack_whose_delta_bases_were_appended_is_rebuilt_exactly(
        cli: Cli, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch sends deltas against objects the receiver has; `index-pack --fix-thin`
    then appends those bases at the end of the pack. So deltas name bases that come
    after them, and the offset deltas built on them were parsed before their base had a
    type (this project's own clone hit that: an internal error)."""
    key, secret = fake_key_id(), fake_secret()
    edited_many_times(repo, 8, 99, key, secret)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-local", str(repo), str(clone))
    shas = edited_many_times(repo, 30, 12, key, secret)
    git(clone, "-c", "fetch.unpackLimit=1", "fetch", "-q", "origin")
    fetched = [idx for idx in packs.pack_indexes(clone / ".git" / "objects")
               if any(bytes.fromhex(shas["v12"]) == sha for sha in packs.index_ids(idx))]
    assert len(fetched) == 1
    plan, objects, failed = rebuilt(fetched[0])
    forward = [p for p in range(len(plan)) if plan.base[p] > p]
    assert forward, "the fetched pack should hold deltas whose base comes later"
    assert failed == [] and plan.broken == []
    kinds = {p: packs.KINDS[plan.kind[p]] for p in range(len(plan)) if plan.kind[p] in packs.KINDS}
    assert 0 not in plan.kind  # every entry's type known (trees included)
    assert len(objects) == len(kinds)
    for p, kind in kinds.items():
        sha = plan.sha(p).hex()
        assert object_id(kind, objects[sha]) == sha
    monkeypatch.setattr(packs, "NUMPY_ENTRIES", 0)  # the numpy planner: the same plan
    vectorized = packs.plan_pack(fetched[0])
    assert vectorized is not None
    for field in _PLAN_FIELDS:
        assert getattr(vectorized, field) == getattr(plan, field), field
    monkeypatch.undo()
    code, findings, _ = history(cli, clone, "--no-cache")
    found = by_key(findings, key)
    assert code == 1 and found["commit"]["sha"] == shas["v12"]

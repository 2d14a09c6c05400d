from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fault_fixtures import child_env, unprivileged

from ipad_qc.walker import matches_any, walk


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def relpaths(result) -> list[str]:
    return [found.relpath for found in result.files]


def test_recursive_sorted_and_non_images_ignored(tmp_path: Path) -> None:
    touch(tmp_path, "b/z.jpg", "a.PNG", "b/a.dng", "c/d/e.tif", "README.md", "b/a.dng.xmp", "meta.json")
    result = walk(tmp_path)
    assert relpaths(result) == ["a.PNG", "b/a.dng", "b/z.jpg", "c/d/e.tif"]
    assert result.ignored == 3
    assert all(found.path.is_absolute() or found.path.exists() for found in result.files)


def test_order_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    names = [f"d{i % 3}/img{i:02d}.jpg" for i in range(12)]
    touch(first, *names)
    touch(second, *reversed(names))
    assert relpaths(walk(first)) == relpaths(walk(second)) == sorted(names)


def test_hidden_files_and_folders_skipped_unless_asked(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", ".hidden.jpg", ".cache/b.jpg")
    assert relpaths(walk(tmp_path)) == ["a.jpg"]
    assert walk(tmp_path).excluded == 1  # the hidden file; the hidden folder is not entered
    assert relpaths(walk(tmp_path, include_hidden=True)) == [".cache/b.jpg", ".hidden.jpg", "a.jpg"]


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    touch(tmp_path, "raw/a.DNG", "raw/sub/b.dng", "jpg/c.jpg", "jpg/thumbs/d.jpg")
    assert relpaths(walk(tmp_path, include=["*.dng"])) == ["raw/a.DNG", "raw/sub/b.dng"]
    assert relpaths(walk(tmp_path, include=["raw/*.dng"])) == ["raw/a.DNG"]
    assert relpaths(walk(tmp_path, include=["raw/**/*.dng"])) == ["raw/a.DNG", "raw/sub/b.dng"]
    excluded = walk(tmp_path, exclude=["thumbs"])
    assert relpaths(excluded) == ["jpg/c.jpg", "raw/a.DNG", "raw/sub/b.dng"]
    assert relpaths(walk(tmp_path, exclude=["**/sub/**", "*.jpg"])) == ["raw/a.DNG"]


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [("a/b/c.jpg", "*.jpg", True), ("a/b/c.jpg", "a/*.jpg", False), ("a/b/c.jpg", "a/**/c.jpg", True),
     ("c.jpg", "**/c.jpg", True), ("a/x1.jpg", "a/x[0-9].jpg", True), ("a/xy.jpg", "a/x[!y].jpg", False),
     ("a/b.jpg", "a/?.jpg", True)],
)
def test_glob_semantics(path: str, pattern: str, expected: bool) -> None:
    assert matches_any(path, [pattern]) is expected


def test_symlink_loop_terminates_and_lists_each_file_once(tmp_path: Path) -> None:
    touch(tmp_path, "shots/a.jpg", "shots/inner/b.jpg")
    os.symlink(tmp_path / "shots", tmp_path / "shots" / "inner" / "loop")
    os.symlink(tmp_path / "shots" / "inner", tmp_path / "shots" / "alias")
    result = walk(tmp_path / "shots")
    # "alias" sorts before "inner", so the folder is listed under its first name, then never again.
    assert relpaths(result) == ["a.jpg", "alias/b.jpg"]
    assert len(result.problems) == 2  # alias/loop -> shots, and inner -> already seen via alias
    assert all("already scanned" in reason for _, reason in result.problems)


def test_non_ascii_names(tmp_path: Path) -> None:
    touch(tmp_path, "été/photo_é.jpg", "日本/写真.jpeg")
    assert relpaths(walk(tmp_path)) == ["été/photo_é.jpg", "日本/写真.jpeg"]
    assert all(found.path.exists() for found in walk(tmp_path).files)


def test_output_folder_inside_root_is_not_scanned(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", "runs/today/masks/a.jpg.png")
    assert relpaths(walk(tmp_path, skip_dirs=[tmp_path / "runs" / "today"])) == ["a.jpg"]


UNREADABLE_WALK = """
import json, sys
from ipad_qc.walker import walk
result = walk(sys.argv[1])
print(json.dumps([[found.relpath for found in result.files], result.problems]))
"""


@pytest.mark.skipif(os.name != "posix", reason="chmod 000 only blocks reading on POSIX")
def test_unreadable_folder_is_reported(tmp_path: Path) -> None:
    prefix = unprivileged()  # as root, in a user namespace where permission bits bind
    touch(tmp_path, "ok.jpg", "locked/x.jpg")
    (tmp_path / "locked").chmod(0)
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", UNREADABLE_WALK, str(tmp_path)], capture_output=True,
                              text=True, env=child_env(), timeout=60)
    finally:
        (tmp_path / "locked").chmod(0o755)
    files, problems = json.loads(done.stdout)
    assert files == ["ok.jpg"]
    assert problems and problems[0][0] == "locked/"


def test_single_file_root(tmp_path: Path) -> None:
    touch(tmp_path, "one.jpg")
    assert relpaths(walk(tmp_path / "one.jpg")) == ["one.jpg"]

"""A stack file's `build:` (Compose's keys, plus the harness's x-site): checked with the file, and the
image tag is a hash of everything the build reads, so an edit rebuilds and nothing else does."""

from __future__ import annotations

import textwrap

import pytest

from harness.errors import HarnessError
from stack.images import own_image_name
from stack.model import load_stack_file
from stack.topology import RunParams

STACK = """\
name: built
services:
  app:
    build: {context: app, dockerfile: Dockerfile, args: {FLAVOUR: plain}, x-site: requirements.txt}
    command: [python3, -m, app]
  app-b:
    build: app
    image: team/app:dev
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nCOPY . /app/\n")
    (tmp_path / "app" / "requirements.txt").write_text("six==1.16.0\n")
    (tmp_path / "app" / "main.py").write_text("print('hi')\n")
    (tmp_path / "stack.yaml").write_text(STACK)
    return tmp_path


def load(path):
    return load_stack_file(path, RunParams(run_id="u", cookie="c"))


def test_a_build_is_read_relative_to_the_stack_file(files):
    topo = load(files / "stack.yaml")
    app, b = topo.node("app"), topo.node("app-b")
    assert app.build.context == str((files / "app").resolve())
    assert (app.build.dockerfile, app.build.args, app.build.site) == ("Dockerfile", (("FLAVOUR", "plain"),),
                                                                      "requirements.txt")
    assert app.image.startswith("chaos-harness/own-app:") and app.image == own_image_name(app.build)
    # the same context with other args is another image; `image:` beside build tags the build too
    assert b.image != app.image and b.build.tag == "team/app:dev" and b.build.site is None


@pytest.mark.parametrize("change", ["main.py", "Dockerfile", "requirements.txt", "new.py"])
def test_the_tag_changes_with_what_the_build_reads_and_only_with_it(files, change):
    before = load(files / "stack.yaml").node("app").image
    (files / "app" / "__pycache__").mkdir()
    (files / "app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"x")
    assert load(files / "stack.yaml").node("app").image == before  # caches are not inputs
    (files / "app" / change).write_text("changed\n")
    assert load(files / "stack.yaml").node("app").image != before


@pytest.mark.parametrize("edit, message", [
    (("context: app,", "context: nope,"), "stack.yaml:4: services.app.build.context: no folder"),
    (("dockerfile: Dockerfile", "dockerfile: Other"), "services.app.build.dockerfile: no Dockerfile"),
    (("{FLAVOUR: plain}", "{BASE: x}"), "services.app.build.args.BASE: BASE is the harness's base image"),
    (("{FLAVOUR: plain}", "[nope]"), "services.app.build.args: a mapping of build args"),
    (("x-site: requirements.txt", "x-site: missing.txt"), "services.app.build.x-site: a requirements file"),
    (("x-site: requirements.txt}", "x-site: requirements.txt, target: dev}"), "services.app.build.target: not read"),
    (("    build: app\n    image: team/app:dev\n", "    command: [x]\n"),
     "services.app-b.image: a service needs an image, or a build"),
    (("image: team/app:dev", "image: [x]"), "services.app-b.image: an image name to tag the build with"),
])
def test_a_bad_build_is_one_line_naming_the_key(files, edit, message):
    old, new = edit
    assert old in STACK
    (files / "stack.yaml").write_text(STACK.replace(old, new, 1))
    with pytest.raises(HarnessError) as caught:
        load(files / "stack.yaml")
    assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_x_site_will_not_overwrite_a_site_folder(files):
    (files / "app" / "site").mkdir()
    with pytest.raises(HarnessError, match="x-site fills the context's site/ folder"):
        load(files / "stack.yaml")


def test_the_shipped_app_is_built_from_its_folder_beside_the_stack_files():
    from stack.model import STACKS_DIR, shipped_stack

    topo = load(shipped_stack("small"))
    built = {n.name for n in topo.nodes if n.build is not None}
    assert built == {"api", "scheduler", "scheduler2", "worker1"}
    assert {topo.node(n).build.context for n in built} == {str(STACKS_DIR / "dispatch")}
    assert topo.node("sink").image == "provider" and topo.node("proxy").image == "proxy"

"""The example apps of `examples/`, each on its own stack file: `chaos_stack` is that app's stack for
the module (the session's stack serves the reference app's catalog)."""

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def chaos_stack(request):
    from harness.errors import HarnessError
    from stack.stack import Stack

    stack = Stack(str(EXAMPLES / request.module.STACK_FILE))
    try:
        stack.up()
    except HarnessError as exc:
        pytest.fail(f"the example's stack did not come up: {exc}\n{exc.detail}", pytrace=False)
    yield stack
    stack.down()

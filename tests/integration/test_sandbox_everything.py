"""Bridge round trips from the WASM sandbox to the pinned ``@modelcontextprotocol/server-everything``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from codemode.calls import default_gate
from codemode.calls.results import result_for_guest
from codemode.calls.shapes import shape_of_result
from codemode.compiler import compile_to_dir
from codemode.compiler.inferred import Inferred
from codemode.compiler.writer import TASK_REQUIRED
from codemode.config import parse_config
from codemode.executors import Executor, Limits, create_executor
from codemode.hub import Hub, ToolRef

EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"
pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(scope="module")
async def everything(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Executor]:
    root = tmp_path_factory.mktemp("everything")
    config = parse_config(json.dumps({"mcpServers": {"everything": {"command": "npx", "args": ["-y", EVERYTHING]}}}))
    async with Hub(config) as hub:
        # The tiny image's result, observed once, types get_tiny_image's stub (issue 14: typed content blocks).
        image = await hub.call_tool(ToolRef("everything", "get-tiny-image"), {})
        shape = shape_of_result(image, result_for_guest(image))
        observed = {ToolRef("everything", "get-tiny-image"): Inferred(shape, 3)}
        compile_to_dir(hub.tools(), root / "stubs", summaries=hub.summaries(), observed=observed)
        executor = create_executor(
            "wasm", stubs_dir=root / "stubs", skills_dir=root / "skills", scratch_root=root / "scratch",
            gate=default_gate(hub),
            limits=Limits(wall_s=60), pool_size=1,
        )  # fmt: skip
        async with executor as ex:
            yield ex


async def test_text_structured_and_image_results(everything: Executor) -> None:
    result = await everything.run(
        "from stubs import everything as e\n"
        "echo = e.echo(message='hi there')\n"
        "total = e.get_sum(a=2, b=40)\n"
        "weather = e.get_structured_content(location='Chicago')\n"
        "image = e.get_tiny_image()\n"
        "blocks = image if isinstance(image, list) else [image]\n"
        "kinds = [b['type'] for b in blocks if isinstance(b, dict)]\n"
        "(echo, total, weather, kinds)"
    )
    assert result.ok, result.error
    echo, total, weather, kinds = result.value
    assert "hi there" in echo
    assert "42" in str(total)
    assert isinstance(weather, dict), weather  # structured content, as data (a string would fail here)
    assert isinstance(weather["temperature"], int | float) and isinstance(weather["conditions"], str)
    assert "image" in kinds


async def test_large_result_of_several_megabytes(everything: Executor) -> None:
    result = await everything.run(
        "from stubs import everything as e\nbig = 'x' * 3_000_000\nback = e.echo(message=big)\n(len(back), big in back)"
    )
    assert result.ok, result.error
    length, contained = result.value
    assert length >= 3_000_000 and contained is True


async def test_tool_errors_are_tool_errors(everything: Executor) -> None:
    result = await everything.run(
        "from stubs import everything as e\n"
        "import codemode_runtime\n"
        "try:\n"
        "    codemode_runtime.call('everything', 'get-sum', {'a': 'not a number'})\n"
        "except ToolError as exc:\n"
        "    caught = (exc.server, exc.tool, exc.kind)\n"
        "caught"
    )
    assert result.ok, result.error
    assert result.value == ["everything", "get-sum", "tool"]


async def test_a_tool_that_requires_tasks_has_no_stub_and_says_why(everything: Executor) -> None:
    # server-everything's simulate-research-query declares execution.taskSupport "required".
    result = await everything.run(
        "import codemode_runtime\n"
        "from stubs import everything as e\n"
        "omitted = [s.get('omitted') for s in list_servers()]\n"
        "found = [h for h in search_tools('simulate research query') if 'omitted' in h]\n"
        "try:\n"
        "    codemode_runtime.call('everything', 'simulate-research-query', {'topic': 'x'})\n"
        "except UnknownTool as exc:\n"
        "    refused = exc.message\n"
        "try:\n"
        "    describe('everything.simulate-research-query')\n"
        "except LookupError as exc:\n"
        "    described = str(exc)\n"
        "(omitted, found, refused, [t for t in e.TOOLS if 'research' in t], described)"
    )
    assert result.ok, result.error
    omitted, found, refused, stubs, described = result.value
    assert described == f"everything.simulate-research-query: {TASK_REQUIRED}", described
    assert omitted == [[{"tool": "simulate-research-query", "why": TASK_REQUIRED}]], omitted
    assert [h["tool"] for h in found] == ["everything.simulate-research-query"], found
    assert "can only be called as a task" in refused, refused
    assert stubs == []


async def test_an_image_result_is_typed_as_a_content_block(everything: Executor) -> None:
    result = await everything.run(
        "from stubs import everything as e\nimport inspect\n"
        "got = e.get_tiny_image()\nblocks = got if isinstance(got, list) else [got]\n"
        "(inspect.signature(e.get_tiny_image).return_annotation, [b['type'] for b in blocks if isinstance(b, dict)])"
    )
    assert result.ok, result.error
    annotation, kinds = result.value
    assert "ImageContent" in annotation and "image" in kinds, annotation

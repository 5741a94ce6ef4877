"""Billed tokens over an agent's turns: what a model API charges for a task, not only its final context.

An agent loop sends the whole conversation again on every turn. A turn is modelled as the input it adds to
the conversation (tool definitions at the start, then the previous turn's tool result) and the output the
model writes (a tool call, or the final answer). So turn ``i`` is billed

* input: every earlier turn's added input and output, plus its own added input;
* output: its own output;
* uncached input: what a prefix cache cannot cover, i.e. everything after the previous turn's input: the
  previous turn's output (a cache entry is a prefix of an earlier *input*) and this turn's added input.

The final context (the figure the benchmark reported before) is the last turn's input plus its output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    """One model turn: tokens it adds to the conversation as input, and tokens the model writes."""

    added_input: int
    output: int


@dataclass(frozen=True)
class Bill:
    """The tokens a sequence of turns is billed for."""

    turns: int
    input: int
    """Input tokens summed over every turn (each turn re-sends the conversation so far)."""
    output: int
    uncached_input: int
    """Input tokens no prefix cache could serve (the part of each turn's input after the previous input)."""
    final_context: int

    def as_dict(self) -> dict[str, int]:
        """The figures as a JSON object."""
        return {
            "turns": self.turns,
            "input": self.input,
            "output": self.output,
            "uncached_input": self.uncached_input,
            "final_context": self.final_context,
        }


def bill(turns: Sequence[Turn]) -> Bill:
    """Simulate the loop over ``turns`` (see the module docstring).

    Raises:
        ValueError: no turns, or a negative token count.
    """
    if not turns:
        raise ValueError("a task takes at least one turn")
    if any(t.added_input < 0 or t.output < 0 for t in turns):
        raise ValueError(f"token counts must be non-negative: {list(turns)!r}")
    context = total_input = total_output = uncached = 0
    previous_output = 0
    for turn in turns:
        context += previous_output + turn.added_input
        total_input += context
        uncached += previous_output + turn.added_input
        total_output += turn.output
        previous_output = turn.output
    return Bill(len(turns), total_input, total_output, uncached, context + previous_output)


def direct_turns(definitions: int, calls: Sequence[tuple[int, int]], answer: int) -> list[Turn]:
    """Direct calling: one turn per tool call, then the answer.

    ``calls`` is ``(call tokens, result tokens)`` per call, in order; the first turn adds the definitions,
    each later turn adds the previous call's result.
    """
    results = [definitions, *(result for _, result in calls)]
    outputs = [*(call for call, _ in calls), answer]
    return [Turn(added, out) for added, out in zip(results, outputs, strict=True)]


def code_mode_turns(
    description: int, discovery: Sequence[tuple[int, int]], program: int, output: int, answer: int
) -> list[Turn]:
    """Code mode: one turn per discovery call, then the program, then the answer.

    ``discovery`` is ``(call tokens, result tokens)`` per discovery call: one ``execute_python`` program
    printing ``describe()`` of every tool, or one ``describe`` MCP call per tool (``--discovery-tools``).
    """
    turns: list[Turn] = []
    added = description
    for call, reads in discovery:
        turns.append(Turn(added, call))
        added = reads
    turns.append(Turn(added, program))
    turns.append(Turn(output, answer))
    return turns

"""Options that take several values after one flag (`--adapters a1 a2 a3`), without rewriting argv.

click gives an option one value per flag. For the options in VARIADIC, the parser's own option object is given
a `process` that, after the first value, also takes the following words while they are not options and the
option accepts them. A value list ends at the next option, at `--`, or, for sample's --adapters (whose prompts
may follow), at the first word that is not an adapter (an existing path, optionally PATH:WEIGHT).
"""
from __future__ import annotations

from typing import Callable

from duge_lora.records import looks_like_adapter_ref

Accept = Callable[[str], bool]


def anything(word: str) -> bool:
    return True


# command -> option name -> which following words it takes
VARIADIC: dict[str, dict[str, Accept]] = {
    "sample": {"--adapters": looks_like_adapter_ref},
    "eval": {"--adapters": anything, "--concept": anything},
    "attack": {"--adapters": anything},
    "train": {"--after": anything, "--preserve": anything, "--synonym": anything},
}


def _greedy(param, accept: Accept) -> None:
    original = param.add_to_parser

    def add_to_parser(parser, ctx):
        original(parser, ctx)
        for opt in param.opts:
            parsed = parser._long_opt.get(opt) or parser._short_opt.get(opt)
            first = parsed.process

            def process(value, state, first=first):
                first(value, state)
                while state.rargs and not state.rargs[0].startswith("-") and accept(state.rargs[0]):
                    first(state.rargs.pop(0), state)
            parsed.process = process
    param.add_to_parser = add_to_parser


def make_variadic(group) -> None:
    """Let the VARIADIC options of the group's commands take several values after one flag."""
    for name, options in VARIADIC.items():
        command = group.commands[name]
        for param in command.params:
            accept = next((options[o] for o in param.opts if o in options), None)
            if accept is not None:
                _greedy(param, accept)

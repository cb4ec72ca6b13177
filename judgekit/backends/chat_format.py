"""How a rubric's messages become a judge model's chat: its template and the adaptations it needs.

judgekit sends every judge the same three messages: system, user, then the assistant's answer
cue, continued. Many real templates cannot take that: Mistral v0.1 and Mixtral raise "roles must
alternate", Gemma-1/2 "System role not supported", Mistral v0.3 and Nemo put the system text
only into the *last* user turn (here the cue follows it, so the system text is silently dropped),
and base models have no template at all. So the template is probed once, with markers for the
message contents, before any engine starts, and the first format that renders every content
exactly once, in order, is chosen:

1. the template as it is (the model's own, or ``--chat-template FILE``);
2. the system text folded into the first user turn (``system + "\\n\\n" + user``, what Mistral's
   own templates do with it);
3. for a model without a chat template: the *completion* form, the messages as plain text
   separated by blank lines, after the BOS token, ending with the answer cue.

The choice is recorded (``ChatFormat.adaptations``) in the judge identity, so a result says which
prompt shape produced it. Templates that trim message text are handled by ``ChatEncoder``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgekit.schema import Message

#: The completion form: no roles, no control tokens but BOS; each message's text, blank lines
#: between, and the generation prompt (free generation) is one more blank line.
COMPLETION_TEMPLATE = (
    "{%- if bos_token %}{{ bos_token }}{% endif %}"
    "{%- for message in messages %}{{ message['content'] }}"
    "{%- if not loop.last %}{{ '\\n\\n' }}{% endif %}{% endfor %}"
    "{%- if add_generation_prompt %}{{ '\\n\\n' }}{% endif %}"
)
COMPLETION = "completion (the model has no chat template)"
#: What a folded system text is joined to the user text with (Mistral's templates use it too).
FOLD_SEPARATOR = "\n\n"
#: Stands for message content ``i`` while a template is probed or split into pieces.
MARK = "\ue000{}\ue001"
MARKS = re.compile("\ue000([0-9]+)\ue001")


class PromptError(ValueError):
    """A chat template cannot give each message's content exactly once, or cannot be loaded."""


@dataclass(frozen=True)
class ChatFormat:
    """The Jinja template a judge's prompts are rendered with, and where it came from."""

    template: str
    origin: str
    fold_system: bool = False

    @property
    def adaptations(self) -> dict[str, str]:
        """What judgekit changed about the model's own chat format (for the judge identity)."""
        return {
            "chat_template": self.origin,
            "system_role": "folded into the first user turn" if self.fold_system else "native",
        }

    def messages(self, messages: Sequence[Message]) -> list[Message]:
        """The messages as this format sends them (the system text folded in where needed)."""
        if not self.fold_system or not messages or messages[0].role != "system":
            return list(messages)
        system, rest = messages[0], list(messages[1:])
        if rest and rest[0].role == "user":
            return [Message("user", system.content + FOLD_SEPARATOR + rest[0].content), *rest[1:]]
        return [Message("user", system.content), *rest]

    def render(self, tokenizer: Any, chat: list[dict[str, str]], *, generation: bool) -> str:
        """``chat`` through the template: an open assistant turn (``generation``) or the last
        message continued."""
        return tokenizer.apply_chat_template(
            chat,
            chat_template=self.template,
            tokenize=False,
            add_generation_prompt=generation,
            continue_final_message=not generation,
        )


def _probe(tokenizer: Any, chat_format: ChatFormat) -> str | None:
    """Why ``chat_format`` cannot render a rubric's messages, or None when it can.

    Both endings are tried: the cue continued (scoring) and an open assistant turn (free
    generation); each must contain every message's content once, in order.
    """
    messages = (Message("system", "s"), Message("user", "u"), Message("assistant", "a"))
    for generation in (False, True):
        shaped = chat_format.messages(messages[:2] if generation else messages)
        chat = [{"role": m.role, "content": MARK.format(i)} for i, m in enumerate(shaped)]
        try:
            rendered = chat_format.render(tokenizer, chat, generation=generation)
        except Exception as error:  # a template raises whatever its author chose
            return f"{type(error).__name__}: {error}"
        order = [int(i) for i in MARKS.findall(rendered)]
        if order != list(range(len(chat))):
            roles = [m["role"] for m in chat]
            return f"it renders the contents of the messages {roles} as {order} (dropped or moved)"
    return None


def choose_format(
    tokenizer: Any, chat_template: str | Path | None = None, *, origin: str = "model"
) -> ChatFormat:
    """The first format that renders a rubric's messages: as is, then with the system folded.

    ``chat_template``: a Jinja file that replaces the tokenizer's template; without one, a
    tokenizer without a template is judged in the completion form. ``origin`` says where the
    tokenizer's own template came from (recorded in the adaptations).
    """
    if chat_template is not None:
        path = Path(chat_template)
        try:
            template = path.read_text()
        except OSError as error:
            raise PromptError(f"cannot read the chat template file {path}: {error}") from error
        digest = hashlib.sha256(template.encode()).hexdigest()[:12]
        origin = f"file {path.name} (sha256 {digest})"
    elif tokenizer.chat_template:
        template = tokenizer.chat_template
    else:
        template, origin = COMPLETION_TEMPLATE, COMPLETION
    problems = []
    for fold in (False, True):
        candidate = ChatFormat(template, origin, fold)
        problem = _probe(tokenizer, candidate)
        if problem is None:
            return candidate
        problems.append(f"{'folded' if fold else 'as is'}: {problem}")
    raise PromptError(
        f"the chat template ({origin}) cannot render a system message, a user message and a "
        f"continued assistant message, even with the system text folded into the user turn "
        f"({'; '.join(problems)})"
    )


def load_tokenizer(path: str) -> tuple[Any, str]:
    """The Hugging Face tokenizer of a model, and where its chat template comes from.

    A folder with only Mistral's ``tekken.json`` is converted by transformers' own converter,
    which maps its BOS/EOS and has ``mistral_common`` write the chat template (loaded directly,
    the file gives neither).
    """
    from transformers import AutoTokenizer

    folder = Path(path)
    tekken = folder / "tekken.json"
    if tekken.is_file() and not (folder / "tokenizer_config.json").is_file():
        from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

        return convert_tekken_tokenizer(str(tekken)), "mistral_common (tekken.json)"
    return AutoTokenizer.from_pretrained(path, mistral_format=False), "model"

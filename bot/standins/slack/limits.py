"""Slack's main Block Kit rules as the stand-in checks them (50 blocks a message, 100 a view,
3000 characters a section text, 2000 a button value, a block_id of at most 255 characters and
unique), worded like Slack's errors; and the block_ids Slack gives blocks sent without one."""

from __future__ import annotations

import copy
import secrets
from typing import Any

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
_MAX_SECTION_TEXT = 3000
_MAX_BUTTON_VALUE = 2000
_MAX_BLOCK_ID = 255
MAX_MESSAGE_TEXT = 40000


def with_block_ids(blocks: Any) -> Any:
    """Copy `blocks`, giving a block_id to blocks without one, as Slack does (one no other
    block of theirs has)."""
    if not isinstance(blocks, list):
        return blocks
    result = copy.deepcopy(blocks)
    taken = {b["block_id"] for b in result if isinstance(b, dict) and "block_id" in b}
    for block in result:
        if isinstance(block, dict) and "block_id" not in block:
            block_id = secrets.token_urlsafe(3)
            while block_id in taken:
                block_id = secrets.token_urlsafe(3)
            taken.add(block_id)
            block["block_id"] = block_id
    return result


def block_problem(blocks: Any, max_blocks: int) -> str | None:
    """The first Block Kit limit `blocks` breaks, worded like Slack's, or None."""
    if not isinstance(blocks, list):
        return "[ERROR] must be an array [json-pointer:/blocks]"
    if len(blocks) > max_blocks:
        return f"[ERROR] no more than {max_blocks} items allowed [json-pointer:/blocks]"
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            return f"[ERROR] missing required field: type [json-pointer:/blocks/{i}]"
        if "block_id" in block:
            block_id = block["block_id"]
            if not isinstance(block_id, str) or not 0 < len(block_id) <= _MAX_BLOCK_ID:
                return (
                    f"[ERROR] must be a string of 1 to {_MAX_BLOCK_ID} characters "
                    f"[json-pointer:/blocks/{i}/block_id]"
                )
            if block_id in seen:
                return (
                    f"[ERROR] duplicate block_id {block_id!r} [json-pointer:/blocks/{i}/block_id]"
                )
            seen.add(block_id)
        text = (block.get("text") or {}).get("text", "") if block["type"] == "section" else ""
        if len(text) > _MAX_SECTION_TEXT:
            return (
                f"[ERROR] must be less than {_MAX_SECTION_TEXT + 1} characters "
                f"[json-pointer:/blocks/{i}/text/text]"
            )
        for j, element in enumerate(block.get("elements") or []):
            if isinstance(element, dict) and len(str(element.get("value", ""))) > _MAX_BUTTON_VALUE:
                return (
                    f"[ERROR] must be less than {_MAX_BUTTON_VALUE + 1} characters "
                    f"[json-pointer:/blocks/{i}/elements/{j}/value]"
                )
    return None
